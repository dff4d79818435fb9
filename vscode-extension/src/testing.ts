// The Test Explorer: `test` blocks of .dsx files in VS Code's Testing view, runnable one by
// one, per file or all, with pass/fail and the expected/actual difference of a failed
// `expect`. Tests are found through the language server's code lenses (the same ones that
// show "▶ Run test"), so the view and the editor agree; they run with `dsx test`.
import * as vscode from "vscode";

export interface FoundTest {
  name: string;
  program: string;
  range: vscode.Range;
}

/** One test's outcome in `dsx test` output. */
export interface Outcome {
  passed: boolean;
  problems: string[];
}

interface Lens {
  range: { start: { line: number; character: number }; end: { line: number; character: number } };
  command?: { command: string; arguments?: { test?: string; program?: string }[] };
}

/** The tests of a document from its code lenses (`dsx.test` lenses name a test). */
export function testsFromLenses(lenses: Lens[] | null | undefined): FoundTest[] {
  const out: FoundTest[] = [];
  for (const lens of lenses ?? []) {
    const args = lens.command?.arguments?.[0];
    if (lens.command?.command !== "dsx.test" || !args?.test) continue;
    const { start, end } = lens.range;
    out.push({
      name: args.test,
      program: args.program ?? "",
      range: new vscode.Range(start.line, start.character, end.line, end.character),
    });
  }
  return out;
}

/** Reads `dsx test` output: `ok   NAME (PROGRAM)` / `FAIL NAME (PROGRAM)` + indented problems. */
export function parseTestOutput(stdout: string): Map<string, Outcome> {
  const outcomes = new Map<string, Outcome>();
  let current: Outcome | undefined;
  for (const line of stdout.split("\n")) {
    const head = /^(ok|FAIL)\s+(\S+) \(([^)]*)\)\s*$/.exec(line);
    if (head !== null) {
      current = { passed: head[1] === "ok", problems: [] };
      outcomes.set(head[2], current);
    } else if (current !== undefined && /^\s{2,}\S/.test(line)) {
      current.problems.push(line.trim());
    } else {
      current = undefined;
    }
  }
  return outcomes;
}

/** `expected answer = 'Paris', got 'Rome'` → the field and both values, for a diff. */
export function expectation(
  problem: string,
): { field: string; expected: string; actual: string } | undefined {
  const match = /^expected (\w+) = (.*), got (.*)$/.exec(problem);
  return match === null ? undefined : { field: match[1], expected: match[2], actual: match[3] };
}

/** The Testing view's messages for a failed test: a diff for each failed `expect`. */
export function failureMessages(
  outcome: Outcome,
  location?: vscode.Location,
): vscode.TestMessage[] {
  const problems = outcome.problems.length > 0 ? outcome.problems : ["the test failed"];
  return problems.map((problem) => {
    const diff = expectation(problem);
    const message =
      diff === undefined
        ? new vscode.TestMessage(problem)
        : vscode.TestMessage.diff(`expected ${diff.field}`, diff.expected, diff.actual);
    if (location !== undefined) message.location = location;
    return message;
  });
}

/** Runs `dsx test FILE --test NAME...`; stdout and stderr together. */
export type RunTests = (
  file: string,
  names: string[],
  token: vscode.CancellationToken,
) => Promise<{ stdout: string; stderr: string; code: number | null }>;

/** Asks the server for a document's code lenses. */
export type Lenses = (uri: string) => Promise<Lens[] | null | undefined>;

/** Keeps the Testing view's items in step with the .dsx files and runs them. */
export class DsxTests {
  readonly controller: vscode.TestController;

  constructor(
    private readonly lenses: Lenses,
    private readonly runTests: RunTests,
  ) {
    this.controller = vscode.tests.createTestController("dsx", "dsx tests");
    this.controller.createRunProfile(
      "Run",
      vscode.TestRunProfileKind.Run,
      (request, token) => this.run(request, token),
      true,
    );
  }

  /** (Re)reads the tests of the file `uri`; a file without tests leaves the view. */
  async refresh(uri: vscode.Uri): Promise<void> {
    const key = uri.toString();
    let found: FoundTest[];
    try {
      found = testsFromLenses(await this.lenses(key));
    } catch {
      return; // server not ready: keep what is shown
    }
    if (found.length === 0) {
      this.controller.items.delete(key);
      return;
    }
    const file =
      this.controller.items.get(key) ??
      this.controller.createTestItem(key, uri.path.split("/").pop() ?? key, uri);
    file.children.replace(
      found.map((t) => {
        const item = this.controller.createTestItem(`${key}#${t.name}`, t.name, uri);
        item.range = t.range;
        item.description = t.program;
        return item;
      }),
    );
    this.controller.items.add(file);
  }

  forget(uri: vscode.Uri): void {
    this.controller.items.delete(uri.toString());
  }

  async run(request: vscode.TestRunRequest, token: vscode.CancellationToken): Promise<void> {
    const run = this.controller.createTestRun(request);
    const files = new Map<vscode.TestItem, vscode.TestItem[]>();
    const add = (item: vscode.TestItem) => {
      if (item.parent === undefined) {
        item.children.forEach((child) => add(child));
        return;
      }
      if (request.exclude?.includes(item)) return;
      files.set(item.parent, [...(files.get(item.parent) ?? []), item]);
    };
    if (request.include === undefined) this.controller.items.forEach(add);
    else request.include.forEach(add);
    try {
      for (const [file, tests] of files) {
        if (token.isCancellationRequested) break;
        tests.forEach((t) => run.started(t));
        const path = file.uri?.fsPath ?? "";
        const done = await this.runTests(path, tests.map((t) => t.label), token);
        run.appendOutput((done.stdout + done.stderr).replace(/\r?\n/g, "\r\n"));
        const outcomes = parseTestOutput(done.stdout);
        for (const test of tests) {
          const outcome = outcomes.get(test.label);
          const where =
            test.uri && test.range ? new vscode.Location(test.uri, test.range) : undefined;
          if (outcome === undefined) {
            const why = done.stderr.trim() || done.stdout.trim() || "dsx test did not report it";
            run.errored(test, new vscode.TestMessage(why));
          } else if (outcome.passed) {
            run.passed(test);
          } else {
            run.failed(test, failureMessages(outcome, where));
          }
        }
      }
    } finally {
      run.end();
    }
  }

  dispose(): void {
    this.controller.dispose();
  }
}
