// Run and Run test from the editor (issue 18, item 2): the command lines, the LM's
// environment (the key never on a command line), asking for inputs, reading
// `dsx run --json --stream --usage` — and one real run of `python -m dsx` against dsx's
// OpenAI-compatible test server. Run by `npm test` in vscode-extension/.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";

import { load, repo } from "./_support.mjs";

const [run] = load("run");
const { askInputs, execute, formatRun, parseRun, runArgs, runEnv, shellLine, streamPrinter, testArgs } =
  run;

const script = { command: "/w/.venv/bin/dsx", args: [], source: "workspace .venv" };
const module = { command: "/usr/bin/python3", args: ["-m", "dsx"], source: "Python interpreter" };

test("command lines: inputs as -i, --json --stream --usage, the model; tests by name", () => {
  assert.deepEqual(
    runArgs(script, "/w/qa.dsx", "qa", { question: "Capital?", context: '["a"]' }, { model: "openai/x" }),
    ["run", "/w/qa.dsx:qa", "--json", "--stream", "--usage", "-i", "question=Capital?", "-i", 'context=["a"]', "--lm", "openai/x"],
  );
  assert.deepEqual(runArgs(module, "/w/qa.dsx", "qa", {}, {}), [
    "-m", "dsx", "run", "/w/qa.dsx:qa", "--json", "--stream", "--usage",
  ]);
  assert.deepEqual(testArgs(script, "/w/qa.dsx", "capital", { model: "local" }), [
    "test", "/w/qa.dsx", "--test", "capital", "--lm", "local",
  ]);
});

test("the command line shown in dsx Run can be pasted into a shell (found in a real VS Code)", () => {
  // it showed `-i question=What is the capital of France?`, which a shell splits in four
  assert.equal(
    shellLine("/w/.venv/bin/dsx", ["run", "/w/qa.dsx:qa", "-i", "question=What is it?", "-i", "n=3"]),
    "/w/.venv/bin/dsx run /w/qa.dsx:qa -i 'question=What is it?' -i n=3",
  );
  assert.equal(shellLine("dsx", ["-i", "q=it's $HOME", "-i", "x="]), "dsx -i 'q=it'\\''s $HOME' -i x=");
  assert.equal(shellLine("dsx", ["-i", 'c=["a"]', ""]), `dsx -i 'c=["a"]' ''`);
});

test("the API base and key go to the environment, and only when set", () => {
  const base = { PATH: "/bin", DSX_API_KEY: "from-env" };
  assert.deepEqual(runEnv(base, {}), base);
  const env = runEnv(base, { apiBase: "http://127.0.0.1:9/v1", apiKey: "secret" });
  assert.equal(env.DSX_API_BASE, "http://127.0.0.1:9/v1");
  assert.equal(env.DSX_API_KEY, "secret");
  assert.equal(base.DSX_API_KEY, "from-env"); // the caller's environment is not changed
  const args = runArgs(script, "/w/qa.dsx", "qa", {}, { model: "m", apiKey: "secret" });
  assert.ok(!args.some((a) => a.includes("secret")));
});

test("asking for inputs: last values offered, required ones enforced, cancel stops", async () => {
  const inputs = [
    { name: "question", type: "str", required: true },
    { name: "context", type: "list[str]", required: true },
    { name: "k", type: "int", required: false },
  ];
  const asked = [];
  const answers = ["Why?", '["x"]', ""];
  const values = await askInputs("qa", inputs, { question: "Before?" }, async (options) => {
    asked.push(options);
    return answers.shift();
  });
  assert.deepEqual(values, { question: "Why?", context: '["x"]' }); // empty optional: default
  assert.equal(asked[0].value, "Before?");
  assert.match(asked[0].prompt, /^question: str$/);
  assert.match(asked[1].prompt, /JSON/);
  assert.match(asked[2].prompt, /optional/);
  assert.equal(asked[0].validateInput(""), "question is required");
  assert.equal(asked[2].validateInput(""), undefined);
  let calls = 0;
  const cancelled = await askInputs("qa", inputs, {}, async () => (calls++, undefined));
  assert.equal(cancelled, undefined);
  assert.equal(calls, 1);
});

test("reading a run: outputs, usage, notes; the report", () => {
  const usage = { models: { "openai/x": { prompt_tokens: 30, completion_tokens: 5, total_tokens: 35 } }, total_tokens: 35, cost: 0.00012 };
  const result = parseRun(
    '{"answer": "Paris", "score": [1, 2]}\n',
    "dsx: `qa` is not optimized (no build/qa.state.json)\nusage: " + JSON.stringify(usage) + "\n",
  );
  assert.deepEqual(result.outputs, { answer: "Paris", score: [1, 2] });
  assert.deepEqual(result.usage, usage);
  assert.deepEqual(result.notes, ["dsx: `qa` is not optimized (no build/qa.state.json)"]);
  const report = formatRun("qa", { question: "Capital?" }, result, 0);
  assert.equal(
    report,
    [
      "▶ qa",
      "  in  question = Capital?",
      "  out answer = Paris",
      "  out score = [1,2]",
      "  usage: 35 tokens (openai/x: 30 in + 5 out), $0.000120",
      "  dsx: `qa` is not optimized (no build/qa.state.json)",
    ].join("\n"),
  );
  const failed = parseRun("", "dsx: no LM: pass --lm MODEL\n");
  assert.equal(failed.outputs, undefined);
  assert.match(formatRun("qa", {}, failed, 1), /no LM[\s\S]*exited with status 1/);
});

test("reading a streamed run: chunks shown as they come, the outputs from the result event", () => {
  const events = [
    { event: "status", message: "Calling the LM..." },
    { event: "chunk", predictor: "predict", field: "reasoning", chunk: "It is", last: false },
    { event: "chunk", predictor: "predict", field: "reasoning", chunk: " known.", last: true },
    { event: "chunk", predictor: "predict", field: "answer", chunk: "Par", last: false },
    { event: "chunk", predictor: "predict", field: "answer", chunk: "is", last: true },
    { event: "result", outputs: { reasoning: "It is known.", answer: "Paris" } },
  ].map((e) => JSON.stringify(e));
  let shown = "";
  const print = streamPrinter((text) => (shown += text));
  for (const line of [...events, "not json"]) print(line);
  assert.equal(shown, "  reasoning: It is known.\n  answer: Paris\n");
  const result = parseRun(events.join("\n") + "\n", "");
  assert.deepEqual(result.outputs, { reasoning: "It is known.", answer: "Paris" });
  assert.deepEqual(result.notes, []);
});

// ---- a real run ------------------------------------------------------------------------------
const python = process.env.DSX_PYTHON ?? path.join(repo, ".venv", "bin", "python");
const workspace = fs.mkdtempSync(path.join(os.tmpdir(), "dsx-run-"));
let server;
after(() => {
  server?.kill();
  fs.rmSync(workspace, { recursive: true, force: true });
});

function startServer() {
  // dsx's OpenAI-compatible test server, answering every request with "Paris".
  const code = [
    "import sys",
    "from dsx.testing import OpenAIServer",
    "with OpenAIServer(lambda r: '<<< answer >>>\\nParis\\n\\n<<< end >>>') as s:",
    "    print(s.api_base, flush=True)",
    "    sys.stdin.read()",
  ].join("\n");
  server = spawn(python, ["-c", code], { stdio: ["pipe", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    server.stdout.once("data", (chunk) => resolve(String(chunk).trim()));
    server.once("error", reject);
  });
}

test("a real run: python -m dsx run with the settings' LM, outputs and usage read back", async () => {
  const apiBase = await startServer();
  const file = path.join(workspace, "qa.dsx");
  fs.writeFileSync(
    file,
    "signature QA { in question: str out answer: str }\nprogram qa = Predict(QA)\n" +
      'test capital for qa {\n    given question = "Capital of France?"\n    expect answer = "Paris"\n}\n',
  );
  const found = { command: python, args: ["-m", "dsx"], source: "PATH" };
  const lm = { model: "openai/test-model", apiBase, apiKey: "k" };
  const env = runEnv({ ...process.env, DSX_CACHE_DIR: path.join(workspace, "cache") }, lm);
  const inputs = { question: "Capital of France?" };
  const lines = [];
  const done = await execute(found.command, runArgs(found, file, "qa", inputs, lm), {
    cwd: workspace,
    env,
    onLine: (line) => lines.push(line),
  });
  assert.equal(done.code, 0, done.stderr);
  // streamed: the answer's chunk events, then the result, each line handed over whole
  assert.ok(lines.some((l) => JSON.parse(l).event === "chunk"), done.stdout);
  assert.deepEqual(JSON.parse(lines.at(-1)), { event: "result", outputs: { answer: "Paris" } });
  const result = parseRun(done.stdout, done.stderr);
  assert.deepEqual(result.outputs, { answer: "Paris" });
  assert.ok(result.usage.total_tokens > 0);
  assert.match(formatRun("qa", inputs, result, done.code), /out answer = Paris[\s\S]*usage: \d+ tokens/);
  const tested = await execute(found.command, testArgs(found, file, "capital", lm), { cwd: workspace, env });
  assert.equal(tested.code, 0, tested.stdout + tested.stderr);
  assert.match(tested.stdout, /ok\s+capital \(qa\)/);
});
