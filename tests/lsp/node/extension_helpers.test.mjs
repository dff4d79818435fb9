// Unit tests of the extension's pure helpers (server path resolution, dsx command lines),
// bundled from the TypeScript sources with esbuild. Run by `npm test` in vscode-extension/.
import assert from "node:assert/strict";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const ext = path.resolve(here, "..", "..", "..", "vscode-extension");
const require = createRequire(path.join(ext, "package.json"));
const esbuild = require("esbuild");

const outdir = fs.mkdtempSync(path.join(os.tmpdir(), "dsx-ext-helpers-"));
esbuild.buildSync({
  entryPoints: [path.join(ext, "src", "server.ts"), path.join(ext, "src", "commands.ts")],
  outdir,
  format: "cjs",
  platform: "node",
  logLevel: "silent",
});
const { resolveServer, expandPath, which } = require(path.join(outdir, "server.js"));
const { commandArgs, commandTitle } = require(path.join(outdir, "commands.js"));

test("command lines for run, build, check and test", () => {
  assert.deepEqual(commandArgs("run", "/w/rag.dsx", { program: "rag" }), ["run", "/w/rag.dsx:rag"]);
  assert.deepEqual(commandArgs("run", "/w/rag.dsx"), ["run", "/w/rag.dsx"]);
  assert.deepEqual(commandArgs("build", "/w/rag.dsx", { program: "rag" }), ["build", "/w/rag.dsx"]);
  assert.deepEqual(commandArgs("check", "/w/rag.dsx"), ["check", "/w/rag.dsx"]);
  assert.deepEqual(commandArgs("test", "/w/qa.dsx", { program: "qa", test: "capital" }), [
    "test", "/w/qa.dsx", "--test", "capital",
  ]);
  assert.deepEqual(commandArgs("test", "/w/qa.dsx", { program: "qa" }), ["test", "/w/qa.dsx", "--program", "qa"]);
  assert.equal(commandTitle("test", "qa.dsx", { program: "qa", test: "capital" }), "dsx test qa.dsx (capital)");
});

test("the server path: PATH lookup, files, variables, clear problems", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dsx-ext-bin-"));
  const exe = path.join(dir, "dsx");
  fs.writeFileSync(exe, "#!/bin/sh\n");
  fs.chmodSync(exe, 0o755);
  const plain = path.join(dir, "not-executable");
  fs.writeFileSync(plain, "");
  try {
    assert.equal(which("dsx", dir), exe);
    assert.equal(which("dsx", "/nonexistent"), undefined);
    assert.deepEqual(resolveServer(exe, undefined), { command: exe });
    assert.deepEqual(resolveServer("${workspaceFolder}/dsx", dir), { command: exe });
    assert.deepEqual(resolveServer("./dsx", dir), { command: exe });
    assert.match(resolveServer("./missing/dsx", dir).problem, /does not exist/);
    if (process.platform !== "win32") {
      assert.match(resolveServer(plain, dir).problem, /is not executable/);
    }
    const saved = process.env.PATH;
    process.env.PATH = "/nonexistent";
    try {
      assert.match(resolveServer("dsx-surely-missing", undefined).problem, /was not found on PATH/);
    } finally {
      process.env.PATH = saved;
    }
    assert.equal(expandPath("~/x", undefined), path.join(os.homedir(), "x"));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
