// Starts `python -m dsx.lsp` and speaks LSP to it with vscode-languageserver-protocol,
// the protocol library under the VS Code client. Run by `npm test` in vscode-extension/.
// DSX_PYTHON picks the interpreter (default: the repository's .venv, then python3).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..", "..", "..");
// Resolve the protocol library from the extension's node_modules.
const require = createRequire(path.join(repo, "vscode-extension", "package.json"));
const rpc = require("vscode-languageserver-protocol/node");

function python() {
  if (process.env.DSX_PYTHON) return process.env.DSX_PYTHON;
  const venv = path.join(repo, ".venv", "bin", "python");
  return fs.existsSync(venv) ? venv : "python3";
}

const workspace = fs.mkdtempSync(path.join(os.tmpdir(), "dsx-node-lsp-"));
const libText = '/// Answer briefly.\nsignature QA {\n    in  question: str\n    out answer: str "a few words"\n}\n';
const appText =
  'import "lib.dsx"\n\nmodule Bot {\n    qa = ChainOfThought(QA)\n\n    forward(question: str) {\n' +
  "        pred = qa(question = question)\n        return pred\n    }\n}\n\nprogram bot = Bot()\n";
fs.writeFileSync(path.join(workspace, "lib.dsx"), libText);
fs.writeFileSync(path.join(workspace, "app.dsx"), appText);
const appUri = pathToFileURL(path.join(workspace, "app.dsx")).href;
const libUri = pathToFileURL(path.join(workspace, "lib.dsx")).href;

let child;
let connection;
const diagnostics = new Map();
const waiters = [];

function onDiagnostics(params) {
  diagnostics.set(params.uri, params.diagnostics);
  for (const w of [...waiters]) {
    if (w.uri === params.uri && w.predicate(params.diagnostics)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(params.diagnostics);
    }
  }
}

function waitDiagnostics(uri, predicate = () => true, timeoutMs = 20000) {
  const known = diagnostics.get(uri);
  if (known && predicate(known)) return Promise.resolve(known);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no diagnostics for ${uri}`)), timeoutMs);
    waiters.push({ uri, predicate, resolve: (d) => { clearTimeout(timer); resolve(d); } });
  });
}

function position(text, needle, delta = 0) {
  const index = text.indexOf(needle) + delta;
  const before = text.slice(0, index);
  const line = before.split("\n").length - 1;
  return { line, character: index - (before.lastIndexOf("\n") + 1) };
}

before(async () => {
  child = spawn(python(), ["-m", "dsx.lsp"], { cwd: workspace, stdio: ["pipe", "pipe", "inherit"] });
  connection = rpc.createProtocolConnection(
    new rpc.StreamMessageReader(child.stdout),
    new rpc.StreamMessageWriter(child.stdin),
  );
  connection.onNotification(rpc.PublishDiagnosticsNotification.type, onDiagnostics);
  connection.listen();
  const result = await connection.sendRequest(rpc.InitializeRequest.type, {
    processId: process.pid,
    rootUri: pathToFileURL(workspace).href,
    workspaceFolders: [{ uri: pathToFileURL(workspace).href, name: "ws" }],
    capabilities: {
      textDocument: {
        completion: { completionItem: { snippetSupport: true } },
        rename: { prepareSupport: true },
        documentSymbol: { hierarchicalDocumentSymbolSupport: true },
      },
    },
    initializationOptions: { diagnosticsDelay: 10 },
  });
  assert.equal(result.serverInfo.name, "dsx");
  assert.ok(result.capabilities.completionProvider);
  await connection.sendNotification(rpc.InitializedNotification.type, {});
  await connection.sendNotification(rpc.DidOpenTextDocumentNotification.type, {
    textDocument: { uri: appUri, languageId: "dsx", version: 1, text: appText },
  });
});

after(async () => {
  if (connection) {
    await connection.sendRequest(rpc.ShutdownRequest.type);
    await connection.sendNotification(rpc.ExitNotification.type);
    connection.dispose();
  }
  await new Promise((resolve) => {
    if (!child || child.exitCode !== null) return resolve();
    const timer = setTimeout(() => { child.kill(); resolve(); }, 5000);
    child.on("exit", () => { clearTimeout(timer); resolve(); });
  });
  fs.rmSync(workspace, { recursive: true, force: true });
});

test("diagnostics are published on open and follow edits", async () => {
  assert.deepEqual(await waitDiagnostics(appUri), []);
  const broken = appText.replace("qa(question = question)", "qa(questoin = question)");
  await connection.sendNotification(rpc.DidChangeTextDocumentNotification.type, {
    textDocument: { uri: appUri, version: 2 },
    contentChanges: [{ text: broken }],
  });
  const diags = await waitDiagnostics(appUri, (d) => d.some((x) => x.code === "DSX111"));
  const unknown = diags.find((x) => x.code === "DSX111");
  assert.match(unknown.message, /did you mean `question`/);
  assert.deepEqual(unknown.range.start, position(broken, "questoin"));
  await connection.sendNotification(rpc.DidChangeTextDocumentNotification.type, {
    textDocument: { uri: appUri, version: 3 },
    contentChanges: [{ range: { start: position(broken, "questoin"), end: position(broken, "questoin", 8) }, text: "question" }],
  });
  assert.deepEqual(await waitDiagnostics(appUri, (d) => d.length === 0), []);
});

test("hover, completion, definition across files", async () => {
  const hover = await connection.sendRequest(rpc.HoverRequest.type, {
    textDocument: { uri: appUri },
    position: position(appText, "QA)"),
  });
  assert.match(hover.contents.value, /signature QA/);
  assert.match(hover.contents.value, /Answer briefly\./);

  const completion = await connection.sendRequest(rpc.CompletionRequest.type, {
    textDocument: { uri: appUri },
    position: position(appText, "question = question", 0),
  });
  const labels = (completion.items ?? completion).map((i) => i.label);
  assert.ok(labels.includes("question"), labels.join(","));

  const defs = await connection.sendRequest(rpc.DefinitionRequest.type, {
    textDocument: { uri: appUri },
    position: position(appText, "QA)"),
  });
  assert.equal(defs[0].uri, libUri);
  assert.deepEqual(defs[0].range.start, position(libText, "QA"));
});

test("symbols, semantic tokens, formatting, code lenses", async () => {
  const symbols = await connection.sendRequest(rpc.DocumentSymbolRequest.type, { textDocument: { uri: appUri } });
  assert.deepEqual(symbols.map((s) => s.name), ["lib.dsx", "Bot", "bot"]);
  const tokens = await connection.sendRequest(rpc.SemanticTokensRequest.type, { textDocument: { uri: appUri } });
  assert.ok(tokens.data.length > 0 && tokens.data.length % 5 === 0);
  const edits = await connection.sendRequest(rpc.DocumentFormattingRequest.type, {
    textDocument: { uri: appUri },
    options: { tabSize: 4, insertSpaces: true },
  });
  assert.ok(Array.isArray(edits));
  const lenses = await connection.sendRequest(rpc.CodeLensRequest.type, { textDocument: { uri: appUri } });
  assert.deepEqual(lenses.map((l) => l.command.command), ["dsx.run", "dsx.build", "dsx.showPrompt"]);
  assert.deepEqual(lenses[0].command.arguments[0], { uri: appUri, program: "bot" });
});

test("rename across files, and a refused rename", async () => {
  const edit = await connection.sendRequest(rpc.RenameRequest.type, {
    textDocument: { uri: appUri },
    position: position(appText, "QA)"),
    newName: "Ask",
  });
  assert.deepEqual(Object.keys(edit.changes).sort(), [appUri, libUri].sort());
  await assert.rejects(
    connection.sendRequest(rpc.RenameRequest.type, {
      textDocument: { uri: appUri },
      position: position(appText, "QA)"),
      newName: "not valid",
    }),
    /not a valid name/,
  );
});

test("the custom request dsx/renderPrompt, and its refusals as errors", async () => {
  // The preview the extension shows: the exact messages, here for typed-in inputs.
  const result = await connection.sendRequest("dsx/renderPrompt", {
    uri: appUri,
    program: "bot",
    inputs: { question: "What is dsx?" },
  });
  assert.equal(result.program, "bot");
  assert.deepEqual(result.predictors.map((p) => p.name), ["qa.predict"]);
  const [qa] = result.predictors;
  assert.equal(qa.signature, "QA");
  assert.deepEqual(qa.placeholders, []);
  assert.equal(qa.messages[0].role, "system");
  assert.match(qa.messages[0].content, /Answer briefly\./);
  assert.match(qa.messages.at(-1).content, /What is dsx\?/);
  // Nothing given: placeholders, so the preview shows while the user types.
  const bare = await connection.sendRequest("dsx/renderPrompt", { uri: appUri });
  assert.deepEqual(bare.predictors[0].placeholders, ["question"]);
  assert.match(bare.predictors[0].messages.at(-1).content, /\{\{question\}\}/);
  // A refusal is a ResponseError carrying the reason.
  await assert.rejects(
    connection.sendRequest("dsx/renderPrompt", { uri: appUri, program: "nope" }),
    (error) => error.code === -32099 && /no program `nope`/.test(error.message),
  );
  await assert.rejects(
    connection.sendRequest("dsx/renderPrompt", { program: "bot" }),
    (error) => error.code === -32602,
  );
});
