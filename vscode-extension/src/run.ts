// Run and Run test from the editor: ask for the program's missing inputs (a test uses its
// `given`), run `dsx run --json --usage` / `dsx test` with the LM from the settings (the API
// key from SecretStorage or the environment — never from a settings file), and show
// outputs, usage and cost in the "dsx Run" output.
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
  const args = [...found.args, "run", `${file}:${program}`, "--json", "--usage"];
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

/** Reads `dsx run --json --usage` output. */
export function parseRun(stdout: string, stderr: string): RunResult {
  const result: RunResult = { notes: [] };
  const last = stdout.trim().split("\n").filter(Boolean).pop();
  if (last !== undefined) {
    try {
      result.outputs = JSON.parse(last);
    } catch {
      result.notes.push(stdout.trim());
    }
  }
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
  options: { cwd?: string; env: NodeJS.ProcessEnv; token?: vscode.CancellationToken },
): Promise<{ stdout: string; stderr: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, windowsHide: true });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) => resolve({ stdout, stderr, code }));
    options.token?.onCancellationRequested(() => child.kill());
  });
}
