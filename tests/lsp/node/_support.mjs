// Shared by the extension's Node tests: bundling TypeScript sources with esbuild, and a
// stand-in for the `vscode` module (no VS Code can run in these tests) that each test fills
// with just the API its code under test calls.
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, "..", "..", "..");
export const ext = path.join(repo, "vscode-extension");
export const require = createRequire(path.join(ext, "package.json"));

/** Bundles `vscode-extension/src/<name>.ts` for each name; returns the loaded modules. */
export function load(...names) {
  const esbuild = require("esbuild");
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), "dsx-ext-test-"));
  esbuild.buildSync({
    entryPoints: names.map((n) => path.join(ext, "src", `${n}.ts`)),
    outdir,
    bundle: true,
    external: ["vscode", "vscode-languageclient", "vscode-languageclient/node"],
    format: "cjs",
    platform: "node",
    logLevel: "silent",
  });
  return names.map((n) => require(path.join(outdir, `${n}.js`)));
}

/**
 * The object `require("vscode")` returns in bundled code; tests assign what they need.
 * Every namespace a source file may touch must exist before `load()`: esbuild's ES-module
 * shim copies the keys present at import time (as getters, so later assignments show).
 */
export const vscode = {
  commands: {},
  env: {},
  extensions: {},
  languages: {},
  tests: {},
  window: {},
  workspace: {},
};

const Module = require("node:module");
const originalLoad = Module._load;
Module._load = function (request, parent, isMain) {
  if (request === "vscode") {
    return vscode;
  }
  return originalLoad.call(this, request, parent, isMain);
};

export function resetVscode() {
  for (const key of ["commands", "env", "extensions", "languages", "tests", "window", "workspace"]) {
    vscode[key] = {};
  }
}

/** A minimal `vscode.Uri` (file and untitled URIs are all these tests use). */
export class Uri {
  constructor(scheme, fsPath, query = "") {
    this.scheme = scheme;
    this.fsPath = fsPath;
    this.path = fsPath;
    this.query = query;
  }
  static file(p) {
    return new Uri("file", p);
  }
  static from({ scheme, path: p = "", query = "" }) {
    return new Uri(scheme, p, query);
  }
  static parse(text) {
    const url = new URL(text);
    if (url.protocol === "file:") return new Uri("file", fileURLToPath(url));
    return new Uri(url.protocol.slice(0, -1), decodeURIComponent(url.pathname), url.search.slice(1));
  }
  with(change) {
    return new Uri(change.scheme ?? this.scheme, change.path ?? this.fsPath, change.query ?? this.query);
  }
  toString() {
    if (this.scheme === "file") return `file://${this.fsPath}`;
    return `${this.scheme}:${this.fsPath}${this.query ? `?${this.query}` : ""}`;
  }
}

/** A minimal `vscode.EventEmitter`. */
export class EventEmitter {
  constructor() {
    this.listeners = [];
    this.event = (listener) => {
      this.listeners.push(listener);
      return { dispose: () => this.listeners.splice(this.listeners.indexOf(listener), 1) };
    };
  }
  fire(value) {
    for (const listener of [...this.listeners]) listener(value);
  }
  dispose() {
    this.listeners = [];
  }
}

vscode.Uri = Uri;
vscode.EventEmitter = EventEmitter;
vscode.ViewColumn = { Active: -1, Beside: -2, One: 1, Two: 2 };
