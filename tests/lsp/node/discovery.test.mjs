// Which dsx the extension runs (issue 18, item 7): the setting, the workspace's .venv, the
// Python extension's selected interpreter, PATH — and Restricted Mode never runs the
// workspace's own executables. Run by `npm test` in vscode-extension/.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";

import { Uri, ext, load, repo, vscode } from "./_support.mjs";

const [server, python] = load("server", "python");
const { discoverServer, describeFound, venvLayout } = server;
const { selectedInterpreter } = python;

const root = fs.mkdtempSync(path.join(os.tmpdir(), "dsx-discovery-"));
after(() => fs.rmSync(root, { recursive: true, force: true }));

function executable(file) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, "#!/bin/sh\n");
  fs.chmodSync(file, 0o755);
  return file;
}

/** A workspace folder, optionally with a .venv holding a python and/or a dsx script. */
function workspace(name, { python = false, dsx = false } = {}) {
  const folder = path.join(root, name);
  fs.mkdirSync(folder, { recursive: true });
  const layout = venvLayout(path.join(folder, ".venv"));
  if (python) executable(layout.python);
  if (dsx) executable(layout.dsx);
  return { folder, layout };
}

const nothingOnPath = path.join(root, "empty-path");
fs.mkdirSync(nothingOnPath, { recursive: true });
const pathDir = path.join(root, "on-path");
const pathDsx = executable(path.join(pathDir, "dsx"));

test("the workspace's .venv comes first: its dsx script", () => {
  const { folder, layout } = workspace("venv-script", { python: true, dsx: true });
  const { found } = discoverServer({ folder, trusted: true, envPath: pathDir, hasDsx: () => true });
  assert.deepEqual(found, { command: layout.dsx, args: [], source: "workspace .venv" });
  assert.equal(describeFound(found), `${layout.dsx} (workspace .venv)`);
});

test("a .venv whose python has dsx but no script: python -m dsx", () => {
  const { folder, layout } = workspace("venv-module", { python: true });
  const asked = [];
  const { found } = discoverServer({
    folder,
    trusted: true,
    envPath: pathDir,
    hasDsx: (p) => (asked.push(p), true),
  });
  assert.deepEqual(asked, [layout.python]);
  assert.deepEqual(found, { command: layout.python, args: ["-m", "dsx"], source: "workspace .venv" });
  assert.equal(describeFound(found), `${layout.python} -m dsx (workspace .venv)`);
});

test("then the selected interpreter, then PATH; each miss is said", () => {
  const { folder } = workspace("venv-without-dsx", { python: true });
  const interpreterDir = path.join(root, "conda", "bin");
  const interpreter = executable(path.join(interpreterDir, "python"));
  let d = discoverServer({
    folder,
    trusted: true,
    interpreter,
    envPath: pathDir,
    hasDsx: (p) => p === interpreter,
  });
  assert.deepEqual(d.found, { command: interpreter, args: ["-m", "dsx"], source: "Python interpreter" });
  assert.match(d.tried[0], /workspace \.venv: .* has no dsx installed/);
  // The interpreter's environment has the script: that is used, without asking Python.
  const script = executable(path.join(interpreterDir, "dsx"));
  d = discoverServer({ folder, trusted: true, interpreter, envPath: pathDir, hasDsx: () => false });
  assert.deepEqual(d.found, { command: script, args: [], source: "Python interpreter" });
  // No .venv, no interpreter: PATH.
  d = discoverServer({ folder: path.join(root, "bare"), trusted: true, envPath: pathDir, hasDsx: () => false });
  assert.deepEqual(d.found, { command: pathDsx, args: [], source: "PATH" });
  assert.match(d.tried[0], /\.venv.*does not exist/);
  // Nothing anywhere: every place tried is listed.
  d = discoverServer({
    folder: path.join(root, "bare"),
    trusted: true,
    interpreter: path.join(root, "missing", "python"),
    envPath: nothingOnPath,
    hasDsx: () => false,
  });
  assert.equal(d.found, undefined);
  assert.equal(d.tried.length, 3);
  assert.match(d.tried.join("\n"), /Python interpreter: .*does not exist/);
  assert.match(d.tried.at(-1), /PATH: no `dsx`/);
});

test("Restricted Mode: the workspace's .venv and interpreter are never run", () => {
  const { folder } = workspace("untrusted", { python: true, dsx: true });
  const interpreter = executable(path.join(root, "untrusted-interp", "python"));
  const probes = [];
  const d = discoverServer({
    folder,
    trusted: false,
    interpreter,
    envPath: pathDir,
    hasDsx: (p) => (probes.push(p), true),
  });
  assert.deepEqual(d.found, { command: pathDsx, args: [], source: "PATH" });
  assert.deepEqual(probes, []); // not even asked whether it has dsx
  assert.match(d.tried[0], /Restricted Mode/);
});

test("an explicit setting wins and, when it is wrong, is reported rather than replaced", () => {
  const { folder, layout } = workspace("setting", { python: true, dsx: true });
  const mine = executable(path.join(root, "mine", "dsx"));
  let d = discoverServer({ configured: mine, folder, trusted: true, envPath: pathDir });
  assert.deepEqual(d.found, { command: mine, args: [], source: "setting" });
  d = discoverServer({ configured: "${workspaceFolder}/.venv/bin/dsx", folder, trusted: true });
  assert.equal(d.found.command, layout.dsx);
  d = discoverServer({ configured: "./nope/dsx", folder, trusted: true, envPath: pathDir });
  assert.equal(d.found, undefined);
  assert.match(d.tried[0], /dsx\.server\.path: .* does not exist/);
  // An empty setting means "discover".
  d = discoverServer({ configured: "  ", folder, trusted: true, envPath: pathDir });
  assert.equal(d.found.source, "workspace .venv");
});

test("python -m dsx really runs dsx (the probe and the module entry point)", async () => {
  const { pythonHasDsx } = server;
  const py = process.env.DSX_PYTHON ?? path.join(repo, ".venv", "bin", "python");
  assert.ok(fs.existsSync(py), `no Python with dsx at ${py} (set DSX_PYTHON)`);
  assert.equal(pythonHasDsx(py), true);
  assert.equal(pythonHasDsx(process.execPath), false); // node is no Python with dsx
  const { spawnSync } = await import("node:child_process");
  const out = spawnSync(py, ["-m", "dsx", "--version"], { encoding: "utf8" });
  assert.equal(out.status, 0, out.stderr);
  assert.match(out.stdout, /^dsx \d/);
});

test("the Python extension's interpreter: environments API, older API, absent, failing", async () => {
  const resource = Uri.file("/w");
  const calls = [];
  vscode.extensions = { getExtension: () => undefined };
  assert.equal(await selectedInterpreter(resource), undefined);

  const exports = {
    environments: {
      getActiveEnvironmentPath: (r) => (calls.push(["active", r]), { path: "/envs/a" }),
      resolveEnvironment: async (env) => (
        calls.push(["resolve", env.path]), { executable: { uri: Uri.file("/envs/a/bin/python") } }
      ),
    },
  };
  let activated = 0;
  vscode.extensions = {
    getExtension: (id) =>
      id === "ms-python.python"
        ? { isActive: false, exports: undefined, activate: async () => (activated++, exports) }
        : undefined,
  };
  assert.equal(await selectedInterpreter(resource), "/envs/a/bin/python");
  assert.equal(activated, 1);
  assert.deepEqual(calls, [["active", resource], ["resolve", "/envs/a"]]);

  // Older Python extensions: settings.getExecutionDetails.
  vscode.extensions = {
    getExtension: () => ({
      isActive: true,
      exports: { settings: { getExecutionDetails: () => ({ execCommand: ["/usr/bin/python3"] }) } },
    }),
  };
  assert.equal(await selectedInterpreter(resource), "/usr/bin/python3");
  // A command line that is more than an interpreter (conda run ...) is not used.
  vscode.extensions = {
    getExtension: () => ({
      isActive: true,
      exports: { settings: { getExecutionDetails: () => ({ execCommand: ["conda", "run", "python"] }) } },
    }),
  };
  assert.equal(await selectedInterpreter(resource), undefined);
  // An extension that throws is no interpreter.
  vscode.extensions = {
    getExtension: () => ({ isActive: false, activate: async () => { throw new Error("boom"); } }),
  };
  assert.equal(await selectedInterpreter(resource), undefined);
});

test("package.json declares limited support for untrusted workspaces", () => {
  const manifest = JSON.parse(fs.readFileSync(path.join(ext, "package.json"), "utf8"));
  const untrusted = manifest.capabilities.untrustedWorkspaces;
  assert.equal(untrusted.supported, "limited");
  assert.match(untrusted.description, /Restricted Mode/);
  // Workspace values of these settings could name an executable: ignored until trusted.
  assert.deepEqual(untrusted.restrictedConfigurations, [
    "dsx.server.path",
    "dsx.server.extraArgs",
    "dsx.lm.model",
    "dsx.lm.apiBase",
  ]);
  assert.equal(manifest.contributes.configuration.properties["dsx.server.path"].default, "");
  // The icon is a real PNG of the size the marketplace shows.
  const icon = fs.readFileSync(path.join(ext, manifest.icon));
  assert.equal(icon.subarray(1, 4).toString(), "PNG");
  assert.equal(icon.readUInt32BE(16), 128);
});
