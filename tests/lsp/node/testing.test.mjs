// The Test Explorer (issue 18, item 3): `test` blocks found through the server's code
// lenses, run with `dsx test`, pass/fail and a diff for a failed `expect`. A stand-in test
// controller records what the extension does with the Testing API; one run reads the
// output of a real `python -m dsx test` against dsx's OpenAI-compatible test server.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";

import { Uri, load, repo, vscode } from "./_support.mjs";

class Range {
  constructor(sl, sc, el, ec) {
    Object.assign(this, { start: { line: sl, character: sc }, end: { line: el, character: ec } });
  }
}
class Location {
  constructor(uri, range) {
    Object.assign(this, { uri, range });
  }
}
class TestMessage {
  constructor(message) {
    this.message = message;
  }
  static diff(message, expected, actual) {
    return Object.assign(new TestMessage(message), { expectedOutput: expected, actualOutput: actual });
  }
}
vscode.Range = Range;
vscode.Location = Location;
vscode.TestMessage = TestMessage;
vscode.TestRunProfileKind = { Run: 1, Debug: 2, Coverage: 3 };

const [testing, run] = load("testing", "run");
const { DsxTests, expectation, parseTestOutput, testsFromLenses } = testing;

function collection(owner) {
  const map = new Map();
  return {
    map,
    add(item) {
      item.parent = owner;
      map.set(item.id, item);
    },
    delete: (id) => map.delete(id),
    get: (id) => map.get(id),
    replace(list) {
      map.clear();
      list.forEach((i) => this.add(i));
    },
    forEach: (f) => [...map.values()].forEach(f),
    get size() {
      return map.size;
    },
  };
}

function fakeController() {
  return {
    items: collection(undefined),
    profiles: [],
    runs: [],
    createRunProfile(label, kind, handler, isDefault) {
      this.profiles.push({ label, kind, handler, isDefault });
    },
    createTestItem(id, label, uri) {
      const item = { id, label, uri };
      item.children = collection(item);
      return item;
    },
    createTestRun() {
      const log = [];
      this.runs.push(log);
      return {
        started: (t) => log.push(["started", t.label]),
        passed: (t) => log.push(["passed", t.label]),
        failed: (t, m) => log.push(["failed", t.label, m]),
        errored: (t, m) => log.push(["errored", t.label, m]),
        appendOutput: (o) => log.push(["output", o]),
        end: () => log.push(["end"]),
      };
    },
    dispose() {},
  };
}

const lens = (line, command, args) => ({
  range: { start: { line, character: 5 }, end: { line, character: 12 } },
  command: { title: "t", command, arguments: [args] },
});

const OUTPUT = [
  "ok   capital (qa)",
  "FAIL italy (qa)",
  "     expected answer = 'Rome', got 'Paris'",
  "     assert failed (line 14): too long",
  "1 passed, 1 failed",
].join("\n");

test("reading dsx test output and expectations", () => {
  const outcomes = parseTestOutput(OUTPUT);
  assert.deepEqual(Object.fromEntries(outcomes), {
    capital: { passed: true, problems: [] },
    italy: { passed: false, problems: ["expected answer = 'Rome', got 'Paris'", "assert failed (line 14): too long"] },
  });
  assert.deepEqual(expectation("expected answer = 'Rome', got 'Paris'"), {
    field: "answer",
    expected: "'Rome'",
    actual: "'Paris'",
  });
  assert.equal(expectation("assert failed: x"), undefined);
});

test("tests from the server's lenses; runs mark pass, fail with a diff, and errors", async () => {
  const controller = fakeController();
  vscode.tests.createTestController = (id, label) => (assert.equal(id, "dsx"), void label, controller);
  const uri = Uri.file("/w/qa.dsx");
  const lenses = [
    lens(0, "dsx.run", { uri: uri.toString(), program: "qa" }),
    lens(8, "dsx.test", { uri: uri.toString(), program: "qa", test: "capital" }),
    lens(12, "dsx.test", { uri: uri.toString(), program: "qa", test: "italy" }),
    lens(16, "dsx.test", { uri: uri.toString(), program: "qa", test: "lost" }),
  ];
  assert.deepEqual(testsFromLenses(lenses).map((t) => t.name), ["capital", "italy", "lost"]);
  const calls = [];
  const tests = new DsxTests(
    async (u) => (u === uri.toString() ? lenses : []),
    async (file, names) => (calls.push([file, names]), { stdout: OUTPUT, stderr: "", code: 1 }),
  );
  assert.equal(controller.profiles[0].isDefault, true);
  await tests.refresh(uri);
  const file = controller.items.get(uri.toString());
  assert.equal(file.label, "qa.dsx");
  assert.deepEqual([...file.children.map.values()].map((i) => [i.label, i.description, i.range.start.line]), [
    ["capital", "qa", 8],
    ["italy", "qa", 12],
    ["lost", "qa", 16],
  ]);
  // Run everything: one dsx test call per file, naming its tests.
  await controller.profiles[0].handler({ include: undefined, exclude: [] }, { isCancellationRequested: false });
  assert.deepEqual(calls, [["/w/qa.dsx", ["capital", "italy", "lost"]]]);
  const log = controller.runs[0];
  assert.deepEqual(log.filter((e) => e[0] === "passed"), [["passed", "capital"]]);
  const [, , messages] = log.find((e) => e[0] === "failed");
  assert.equal(messages[0].expectedOutput, "'Rome'");
  assert.equal(messages[0].actualOutput, "'Paris'");
  assert.equal(messages[0].location.range.start.line, 12);
  assert.equal(messages[1].message, "assert failed (line 14): too long");
  assert.equal(log.find((e) => e[0] === "errored")[1], "lost");
  assert.deepEqual(log.at(-1), ["end"]);
  // Run one test.
  const italy = file.children.get(`${uri.toString()}#italy`);
  await controller.profiles[0].handler({ include: [italy], exclude: [] }, { isCancellationRequested: false });
  assert.deepEqual(calls[1], ["/w/qa.dsx", ["italy"]]);
  // The tests go away with the file's last test block.
  lenses.splice(1);
  await tests.refresh(uri);
  assert.equal(controller.items.get(uri.toString()), undefined);
});

// ---- the real dsx test output ------------------------------------------------------------
const python = process.env.DSX_PYTHON ?? path.join(repo, ".venv", "bin", "python");
const workspace = fs.mkdtempSync(path.join(os.tmpdir(), "dsx-testing-"));
let server;
after(() => {
  server?.kill();
  fs.rmSync(workspace, { recursive: true, force: true });
});

test("a real dsx test run is read right: ok, FAIL and the expected/actual values", async () => {
  const code = [
    "import sys",
    "from dsx.testing import OpenAIServer",
    "with OpenAIServer(lambda r: '<<< answer >>>\\nParis\\n\\n<<< end >>>') as s:",
    "    print(s.api_base, flush=True)",
    "    sys.stdin.read()",
  ].join("\n");
  server = spawn(python, ["-c", code], { stdio: ["pipe", "pipe", "inherit"] });
  const apiBase = await new Promise((resolve) => server.stdout.once("data", (c) => resolve(String(c).trim())));
  const file = path.join(workspace, "qa.dsx");
  fs.writeFileSync(
    file,
    "signature QA { in question: str out answer: str }\nprogram qa = Predict(QA)\n" +
      'test capital for qa {\n    given question = "Capital of France?"\n    expect answer = "Paris"\n}\n' +
      'test italy for qa {\n    given question = "Capital of Italy?"\n    expect answer = "Rome"\n}\n',
  );
  const found = { command: python, args: ["-m", "dsx"], source: "PATH" };
  const lm = { model: "openai/test-model", apiBase, apiKey: "k" };
  const env = run.runEnv({ ...process.env, DSX_CACHE_DIR: path.join(workspace, "cache") }, lm);
  const done = await run.execute(found.command, run.testArgs(found, file, ["capital", "italy"], lm), {
    cwd: workspace,
    env,
  });
  assert.equal(done.code, 1, done.stderr);
  const outcomes = parseTestOutput(done.stdout);
  assert.equal(outcomes.get("capital").passed, true);
  assert.equal(outcomes.get("italy").passed, false);
  assert.deepEqual(expectation(outcomes.get("italy").problems[0]), {
    field: "answer",
    expected: "'Rome'",
    actual: "'Paris'",
  });
});
