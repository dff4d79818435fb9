// Run and Run test from the editor: ask for the program's missing inputs (a test uses its
// `given`), run `dsx run --json --stream --usage` / `dsx test` with the LM from the settings
// (the API key from SecretStorage or the environment — never from a settings file), show
// each output field as the LM writes it, then outputs, usage and cost in the "dsx Run" output.
import { spawn } from "child_process";
import * as vscode from "vscode";

import type { Found } from "./server";

/** Where the API key lives in VS Code's SecretStorage. */
export const API_KEY_SECRET = "dsx.lm.apiKey";

export interface ProgramInput {
  name: string;
  type: string;
  required: boolean;
}

/** The LM settings a run uses (`dsx.lm.*`), and the key from SecretStorage or the env. */
export interface LmChoice {
  model?: string;
  apiBase?: string;
  apiKey?: string;
}

/** The arguments after the dsx command for running `program` of `file` with `inputs`. */
export function runArgs(
  found: Found,
  file: string,
  program: string,
  inputs: Record<string, string>,
  lm: LmChoice,
): string[] {
  const args = [...found.args, "run", `${file}:${program}`, "--json", "--stream", "--usage"];
  for (const [name, text] of Object.entries(inputs)) {
    args.push("-i", `${name}=${text}`);
  }
  if (lm.model) args.push("--lm", lm.model);
  return args;
}

/** The arguments for running tests by name (their `given` are the inputs). */
export function testArgs(
  found: Found,
  file: string,
  tests: string | string[],
  lm: LmChoice,
): string[] {
  const args = [...found.args, "test", file];
  for (const test of typeof tests === "string" ? [tests] : tests) args.push("--test", test);
  if (lm.model) args.push("--lm", lm.model);
  return args;
}

/**
 * A command line as a POSIX shell reads it, for the "dsx Run" output: a word with spaces,
 * quotes or other shell characters is single-quoted, so the line can be pasted as it is.
 */
export function shellLine(command: string, args: string[]): string {
  const plain = /^[A-Za-z0-9_\-+=:,./@%]+$/;
  const quote = (word: string) =>
    plain.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`;
  return [command, ...args].map(quote).join(" ");
}

/** The environment of a run: the API base and key as `dsx` reads them (DSX_API_*). */
export function runEnv(base: NodeJS.ProcessEnv, lm: LmChoice): NodeJS.ProcessEnv {
  const env = { ...base };
  if (lm.apiBase) env.DSX_API_BASE = lm.apiBase;
  if (lm.apiKey) env.DSX_API_KEY = lm.apiKey;
  return env;
}

export interface RunResult {
  outputs?: Record<string, unknown>;
  usage?: { models: Record<string, Record<string, number>>; total_tokens: number; cost?: number };
  /** What dsx said on stderr besides the usage line (learned state, errors). */
  notes: string[];
}

/** Reads `dsx run --json [--stream] --usage` output: the outputs are the `result` event of a
 * streamed run (one JSON event a line) or the last line of a plain `--json` run. */
export function parseRun(stdout: string, stderr: string): RunResult {
  const result: RunResult = { notes: [] };
  const other: string[] = [];
  let plain: Record<string, unknown> | undefined;
  for (const line of stdout.split("\n")) {
    if (!line.trim()) continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      other.push(line);
      continue;
    }
    const event = value as { event?: unknown; outputs?: Record<string, unknown> };
    if (event && typeof event === "object" && typeof event.event === "string") {
      if (event.event === "result") result.outputs = event.outputs;
      continue; // chunk and status events were shown while the program ran
    }
    plain = value as Record<string, unknown>;
  }
  result.outputs ??= plain;
  if (other.length) result.notes.push(other.join("\n"));
  for (const line of stderr.split("\n")) {
    if (line.startsWith("usage: ")) {
      try {
        result.usage = JSON.parse(line.slice("usage: ".length));
        continue;
      } catch {
        // not ours: shown as a note
      }
    }
    if (line.trim()) result.notes.push(line);
  }
  return result;
}

/** Shows a streamed run's `chunk` events as they come: `  field: text...`, one line a field.
 * Returns the function to call with each line of stdout. */
export function streamPrinter(write: (text: string) => void): (line: string) => void {
  let open: string | undefined;
  return (line: string) => {
    let event: { event?: string; predictor?: string; field?: string; chunk?: string; last?: boolean };
    try {
      event = JSON.parse(line);
    } catch {
      return;
    }
    if (!event || event.event !== "chunk") return;
    const key = `${event.predictor}.${event.field}`;
    if (open !== key) {
      if (open !== undefined) write("\n");
      write(`  ${event.field}: `);
      open = key;
    }
    write(event.chunk ?? "");
    if (event.last) {
      write("\n");
      open = undefined;
    }
  };
}

/** The report shown in the output for one run. */
export function formatRun(
  program: string,
  inputs: Record<string, string>,
  result: RunResult,
  exitCode: number | null,
): string {
  const lines = [`▶ ${program}`];
  for (const [name, value] of Object.entries(inputs)) lines.push(`  in  ${name} = ${value}`);
  for (const [name, value] of Object.entries(result.outputs ?? {})) {
    const shown = typeof value === "string" ? value : JSON.stringify(value);
    lines.push(`  out ${name} = ${shown}`);
  }
  if (result.usage !== undefined) {
    const models = Object.entries(result.usage.models)
      .map(([model, u]) => `${model}: ${u.prompt_tokens ?? 0} in + ${u.completion_tokens ?? 0} out`)
      .join("; ");
    const cost = result.usage.cost ? `, $${result.usage.cost.toFixed(6)}` : "";
    lines.push(`  usage: ${result.usage.total_tokens} tokens (${models})${cost}`);
  }
  for (const note of result.notes) lines.push(`  ${note}`);
  if (exitCode !== 0) lines.push(`  dsx exited with status ${exitCode}`);
  return lines.join("\n");
}

/** Asks for each input (with the last value used as the default); undefined: cancelled. */
export async function askInputs(
  program: string,
  inputs: ProgramInput[],
  previous: Record<string, string>,
  ask: (options: vscode.InputBoxOptions) => Thenable<string | undefined> = (o) =>
    vscode.window.showInputBox(o),
): Promise<Record<string, string> | undefined> {
  const values: Record<string, string> = {};
  for (const input of inputs) {
    const text = await ask({
      title: `Run ${program}`,
      prompt:
        `${input.name}: ${input.type}` +
        (input.type === "str" ? "" : " (JSON, e.g. [\"a\", \"b\"])") +
        (input.required ? "" : " — optional, leave empty to use the default"),
      value: previous[input.name] ?? "",
      ignoreFocusOut: true,
      validateInput: (value) =>
        input.required && value === "" ? `${input.name} is required` : undefined,
    });
    if (text === undefined) return undefined;
    if (text !== "" || input.required) values[input.name] = text;
  }
  return values;
}

/** Runs `command args` and collects its output (the child is killed on cancellation). */
export function execute(
  command: string,
  args: string[],
  options: {
    cwd?: string;
    env: NodeJS.ProcessEnv;
    token?: vscode.CancellationToken;
    /** Called with each whole line of stdout as it arrives. */
    onLine?: (line: string) => void;
  },
): Promise<{ stdout: string; stderr: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, windowsHide: true });
    let stdout = "";
    let stderr = "";
    let pending = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
      if (!options.onLine) return;
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) options.onLine(line);
    });
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) => resolve({ stdout, stderr, code }));
    options.token?.onCancellationRequested(() => child.kill());
  });
}
