// The dsx extension: starts `dsx lsp` as a language client, and runs `dsx` commands
// (run, build, check, test) as tasks — from the command palette or the code lenses.
import * as path from "path";
import * as vscode from "vscode";
import {
  LanguageClient,
  LanguageClientOptions,
  RevealOutputChannelOn,
  ServerOptions,
  State,
  TransportKind,
} from "vscode-languageclient/node";

import { CommandName, LensArgs, commandArgs, commandTitle } from "./commands";
import { METHOD, PromptPreviews, Rendered, SCHEME, showPreview } from "./preview";
import { onInterpreterChange, selectedInterpreter } from "./python";
import {
  API_KEY_SECRET,
  LmChoice,
  askInputs,
  execute,
  formatRun,
  parseRun,
  runArgs,
  runEnv,
  shellLine,
  streamPrinter,
  testArgs,
} from "./run";
import { Found, describeFound, discoverServer } from "./server";
import { DsxTests } from "./testing";

let client: LanguageClient | undefined;
let output: vscode.OutputChannel | undefined;
let runOutput: vscode.OutputChannel | undefined;

function settings(): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration("dsx");
}

function workspaceFolder(uri?: vscode.Uri): string | undefined {
  const folder = uri
    ? vscode.workspace.getWorkspaceFolder(uri)
    : vscode.workspace.workspaceFolders?.[0];
  return folder?.uri.fsPath;
}

let found: Found | undefined;
let status: vscode.LanguageStatusItem | undefined;

/**
 * The dsx to run — the setting, the workspace's .venv, the selected Python interpreter,
 * PATH — or undefined after telling the user what was tried. Says which one it uses.
 */
async function dsxExecutable(purpose: string): Promise<Found | undefined> {
  const folder = workspaceFolder();
  const discovery = discoverServer({
    configured: settings().get<string>("server.path", "") || undefined,
    folder,
    trusted: vscode.workspace.isTrusted,
    interpreter: vscode.workspace.isTrusted
      ? await selectedInterpreter(folder ? vscode.Uri.file(folder) : undefined)
      : undefined,
  });
  output ??= vscode.window.createOutputChannel("dsx Language Server");
  if (discovery.found !== undefined) {
    const changed = found === undefined || describeFound(found) !== describeFound(discovery.found);
    found = discovery.found;
    if (changed) {
      output.appendLine(`dsx: using ${describeFound(found)}`);
    }
    showStatus(found);
    return found;
  }
  found = undefined;
  showStatus(undefined);
  output.appendLine(`dsx: no dsx found; tried: ${discovery.tried.join("; ")}`);
  const choice = await vscode.window.showErrorMessage(
    `dsx: cannot ${purpose}: no dsx found (${discovery.tried.join("; ")}). Install dsx in ` +
      "the workspace's .venv or your environment (pip install dsx), select a Python " +
      "interpreter that has it, or set dsx.server.path.",
    "Open Settings",
  );
  if (choice === "Open Settings") {
    await vscode.commands.executeCommand("workbench.action.openSettings", "dsx.server.path");
  }
  return undefined;
}

function showStatus(which: Found | undefined): void {
  if (status === undefined) {
    status = vscode.languages.createLanguageStatusItem("dsx.server", { language: "dsx" });
    status.name = "dsx";
    status.command = { title: "Show Output", command: "dsx.showOutput" };
  }
  status.text = which === undefined ? "dsx: not found" : `dsx (${which.source})`;
  status.detail = which === undefined ? "no dsx to run" : [which.command, ...which.args].join(" ");
  status.severity =
    which === undefined
      ? vscode.LanguageStatusSeverity.Error
      : vscode.LanguageStatusSeverity.Information;
}

async function startClient(): Promise<void> {
  const which = await dsxExecutable("start the language server");
  if (which === undefined) {
    return;
  }
  output ??= vscode.window.createOutputChannel("dsx Language Server");
  const command = [which.command, ...which.args].join(" ");
  const extraArgs = settings().get<string[]>("server.extraArgs", []);
  const serverOptions: ServerOptions = {
    command: which.command,
    args: [...which.args, "lsp", ...extraArgs],
    transport: TransportKind.stdio,
    options: { cwd: workspaceFolder() },
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [
      { scheme: "file", language: "dsx" },
      { scheme: "untitled", language: "dsx" },
    ],
    outputChannel: output,
    revealOutputChannelOn: RevealOutputChannelOn.Never,
    initializationOptions: {
      diagnosticsDelay: settings().get<number>("diagnostics.delay", 150),
      // The extension ships its own snippets; the server's would show twice.
      snippets: false,
    },
    synchronize: {
      fileEvents: vscode.workspace.createFileSystemWatcher("**/*.dsx"),
    },
  };
  // The id "dsx" makes the client read `dsx.trace.server` for its trace level.
  client = new LanguageClient("dsx", "dsx Language Server", serverOptions, clientOptions);
  client.onDidChangeState((event) => {
    if (event.newState === State.Stopped && event.oldState === State.Running) {
      output?.appendLine("dsx: the language server stopped.");
    }
  });
  try {
    await client.start();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    output.appendLine(`dsx: could not start \`${command} lsp\`: ${message}`);
    const choice = await vscode.window.showErrorMessage(
      `dsx: the language server (\`${command} lsp\`) did not start: ${message}. ` +
        "Is this dsx version recent enough to have `dsx lsp`?",
      "Show Output",
      "Open Settings",
    );
    if (choice === "Show Output") {
      output.show();
    } else if (choice === "Open Settings") {
      await vscode.commands.executeCommand("workbench.action.openSettings", "dsx.server.path");
    }
    client = undefined;
  }
}

async function stopClient(): Promise<void> {
  if (client !== undefined) {
    const old = client;
    client = undefined;
    try {
      await old.stop();
    } catch {
      // already stopped
    }
  }
}

/** The .dsx file a command is about: the code lens's, else the active editor's. */
async function targetDocument(args?: LensArgs): Promise<vscode.TextDocument | undefined> {
  if (args?.uri) {
    return vscode.workspace.openTextDocument(vscode.Uri.parse(args.uri));
  }
  const editor = vscode.window.activeTextEditor;
  if (editor !== undefined && editor.document.languageId === "dsx") {
    return editor.document;
  }
  void vscode.window.showWarningMessage("dsx: open a .dsx file first.");
  return undefined;
}

async function runCommand(name: CommandName, args?: LensArgs): Promise<void> {
  const document = await targetDocument(args);
  if (document === undefined) {
    return;
  }
  if (document.isUntitled) {
    void vscode.window.showWarningMessage("dsx: save the file before running dsx on it.");
    return;
  }
  if (document.isDirty) {
    await document.save(); // dsx reads the file from disk
  }
  if (name !== "check" && !vscode.workspace.isTrusted) {
    // Running a program, its tests or a build executes the workspace's Python code.
    const choice = await vscode.window.showWarningMessage(
      `dsx: \`dsx ${name}\` runs this workspace's code; trust the workspace first.`,
      "Manage Workspace Trust",
    );
    if (choice === "Manage Workspace Trust") {
      await vscode.commands.executeCommand("workbench.trust.manage");
    }
    return;
  }
  const which = await dsxExecutable(`run \`dsx ${name}\``);
  if (which === undefined) {
    return;
  }
  const file = document.uri.fsPath;
  const folder = vscode.workspace.getWorkspaceFolder(document.uri);
  const task = new vscode.Task(
    { type: "dsx", command: name, file, ...(args?.program ? { program: args.program } : {}) },
    folder ?? vscode.TaskScope.Workspace,
    commandTitle(name, path.basename(file), args ?? {}),
    "dsx",
    new vscode.ProcessExecution(
      which.command,
      [...which.args, ...commandArgs(name, file, args ?? {})],
      { cwd: folder?.uri.fsPath ?? path.dirname(file) },
    ),
  );
  task.presentationOptions = { reveal: vscode.TaskRevealKind.Always, clear: true };
  await vscode.tasks.executeTask(task);
}

async function offerRestart(why: string): Promise<void> {
  const choice = await vscode.window.showInformationMessage(`dsx: ${why}.`, "Restart Server");
  if (choice === "Restart Server") {
    await vscode.commands.executeCommand("dsx.restartServer");
  }
}

/** Opens the prompt preview of a program or test (a code lens's, else the active file's). */
async function showPrompt(args?: LensArgs): Promise<void> {
  const document = await targetDocument(args);
  if (document === undefined) {
    return;
  }
  await showPreview({
    uri: args?.uri ?? document.uri.toString(),
    ...(args?.program ? { program: args.program } : {}),
    ...(args?.test ? { test: args.test } : {}),
  });
}

/** The LM of a run: `dsx.lm.*` settings, the key from SecretStorage (else the env). */
async function lmChoice(context: vscode.ExtensionContext): Promise<LmChoice> {
  const model = settings().get<string>("lm.model", "") || undefined;
  const apiBase = settings().get<string>("lm.apiBase", "") || undefined;
  const apiKey = (await context.secrets.get(API_KEY_SECRET)) || undefined;
  return { model, apiBase, apiKey };
}

/**
 * Run (a program, asking for its inputs) or Run test (a test, with its `given`) in a
 * child process, and show the outputs, usage and cost in the "dsx Run" output.
 */
async function runInEditor(
  context: vscode.ExtensionContext,
  kind: "run" | "test",
  args?: LensArgs,
): Promise<void> {
  const document = await targetDocument(args);
  if (document === undefined) {
    return;
  }
  if (document.isUntitled) {
    void vscode.window.showWarningMessage("dsx: save the file before running it.");
    return;
  }
  if (!vscode.workspace.isTrusted) {
    const choice = await vscode.window.showWarningMessage(
      "dsx: running a program runs this workspace's code; trust the workspace first.",
      "Manage Workspace Trust",
    );
    if (choice === "Manage Workspace Trust") {
      await vscode.commands.executeCommand("workbench.trust.manage");
    }
    return;
  }
  if (document.isDirty) {
    await document.save(); // dsx reads the file from disk
  }
  const which = await dsxExecutable("run the program");
  if (which === undefined) {
    return;
  }
  const lm = await lmChoice(context);
  if (!lm.model && !process.env.DSX_LM) {
    const choice = await vscode.window.showErrorMessage(
      "dsx: no LM to run with: set dsx.lm.model (e.g. openai/gpt-4o-mini), or DSX_LM in " +
        "the environment VS Code was started from.",
      "Open Settings",
    );
    if (choice === "Open Settings") {
      await vscode.commands.executeCommand("workbench.action.openSettings", "dsx.lm");
    }
    return;
  }
  const file = document.uri.fsPath;
  const folder = vscode.workspace.getWorkspaceFolder(document.uri)?.uri.fsPath;
  let commandArgs: string[];
  let label: string;
  let inputs: Record<string, string> = {};
  if (kind === "test" && args?.test) {
    label = `test ${args.test}`;
    commandArgs = testArgs(which, file, args.test, lm);
  } else {
    let info: Rendered;
    try {
      if (client === undefined) throw new Error("the dsx language server is not running");
      info = (await client.sendRequest(METHOD, {
        uri: args?.uri ?? document.uri.toString(),
        ...(args?.program ? { program: args.program } : {}),
        allowPython: true,
      })) as Rendered;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      void vscode.window.showErrorMessage(`dsx: cannot run: ${message}`);
      return;
    }
    const key = `dsx.inputs:${file}:${info.program}`;
    const asked = await askInputs(
      info.program,
      info.programInputs,
      context.workspaceState.get<Record<string, string>>(key, {}),
    );
    if (asked === undefined) {
      return; // cancelled
    }
    inputs = asked;
    await context.workspaceState.update(key, inputs);
    label = info.program;
    commandArgs = runArgs(which, file, info.program, inputs, lm);
  }
  runOutput ??= vscode.window.createOutputChannel("dsx Run");
  runOutput.show(true);
  // The key travels in the environment, never on the command line shown here.
  runOutput.appendLine(`$ ${shellLine(which.command, commandArgs)}`);
  const done = await vscode.window.withProgress(
    {
      location: vscode.ProgressLocation.Notification,
      title: `dsx: running ${label}`,
      cancellable: true,
    },
    (_progress, token) =>
      execute(which.command, commandArgs, {
        cwd: folder,
        env: runEnv(process.env, lm),
        token,
        onLine: kind === "test" && args?.test ? undefined : streamPrinter((t) => runOutput?.append(t)),
      }).catch((error: Error) => ({ stdout: "", stderr: error.message, code: -1 })),
  );
  if (kind === "test" && args?.test) {
    runOutput.appendLine((done.stdout + done.stderr).trimEnd());
  } else {
    runOutput.appendLine(formatRun(label, inputs, parseRun(done.stdout, done.stderr), done.code));
  }
  runOutput.appendLine("");
}

/** The Testing view: items from the server's lenses, runs through `dsx test`. */
function testExplorer(context: vscode.ExtensionContext): DsxTests {
  const tests = new DsxTests(
    async (uri) =>
      client === undefined
        ? undefined
        : client.sendRequest("textDocument/codeLens", { textDocument: { uri } }),
    async (file, names, token) => {
      if (!vscode.workspace.isTrusted) {
        throw new Error("running tests runs this workspace's code: trust the workspace first");
      }
      const which = await dsxExecutable("run the tests");
      if (which === undefined) {
        throw new Error("no dsx to run the tests with");
      }
      const lm = await lmChoice(context);
      const folder = vscode.workspace.getWorkspaceFolder(vscode.Uri.file(file))?.uri.fsPath;
      return execute(which.command, testArgs(which, file, names, lm), {
        cwd: folder,
        env: runEnv(process.env, lm),
        token,
      });
    },
  );
  const timers = new Map<string, ReturnType<typeof setTimeout>>();
  const later = (uri: vscode.Uri) => {
    const key = uri.toString();
    clearTimeout(timers.get(key));
    timers.set(
      key,
      setTimeout(() => {
        timers.delete(key);
        void tests.refresh(uri);
      }, 500),
    );
  };
  const dsxFiles = vscode.workspace.createFileSystemWatcher("**/*.dsx");
  context.subscriptions.push(
    tests,
    dsxFiles,
    dsxFiles.onDidCreate(later),
    dsxFiles.onDidChange(later),
    dsxFiles.onDidDelete((uri) => tests.forget(uri)),
    vscode.workspace.onDidOpenTextDocument((d) => d.languageId === "dsx" && later(d.uri)),
    vscode.workspace.onDidChangeTextDocument(
      (e) => e.document.languageId === "dsx" && later(e.document.uri),
    ),
    { dispose: () => timers.forEach((t) => clearTimeout(t)) },
  );
  return tests;
}

/** Fills the Testing view with the workspace's tests (once the server runs). */
async function findTests(tests: DsxTests): Promise<void> {
  const files = await vscode.workspace.findFiles(
    "**/*.dsx",
    "**/{node_modules,.venv,venv,build,dist,.git}/**",
    500,
  );
  for (const uri of files) {
    await tests.refresh(uri);
  }
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const previews = new PromptPreviews(
    () => {
      const running = client;
      return running === undefined ? undefined : (m, p) => running.sendRequest(m, p);
    },
    () => vscode.workspace.isTrusted,
  );
  const stateFiles = vscode.workspace.createFileSystemWatcher("**/build/*.state.json");
  context.subscriptions.push(
    previews,
    stateFiles,
    vscode.workspace.registerTextDocumentContentProvider(SCHEME, previews),
    vscode.commands.registerCommand("dsx.showPrompt", (args?: LensArgs) => showPrompt(args)),
    vscode.workspace.onDidChangeTextDocument((event) => {
      if (event.document.languageId === "dsx") {
        previews.documentChanged(event.document.uri.toString());
      }
    }),
    vscode.workspace.onDidCloseTextDocument((document) => {
      if (document.uri.scheme === SCHEME) {
        previews.closed(document.uri);
      }
    }),
    stateFiles.onDidCreate(() => previews.refreshAll()),
    stateFiles.onDidChange(() => previews.refreshAll()),
    stateFiles.onDidDelete(() => previews.refreshAll()),
  );
  for (const name of ["build", "check"] as const) {
    context.subscriptions.push(
      vscode.commands.registerCommand(`dsx.${name}`, (args?: LensArgs) => runCommand(name, args)),
    );
  }
  context.subscriptions.push(
    vscode.commands.registerCommand("dsx.run", (args?: LensArgs) =>
      runInEditor(context, "run", args),
    ),
    // One test (a code lens): in the output; every test of a file: as a task.
    vscode.commands.registerCommand("dsx.test", (args?: LensArgs) =>
      args?.test ? runInEditor(context, "test", args) : runCommand("test", args),
    ),
    vscode.commands.registerCommand("dsx.setApiKey", async () => {
      const key = await vscode.window.showInputBox({
        title: "dsx: LM API key",
        prompt: "Kept in VS Code's secret storage (never in settings). Empty: forget it.",
        password: true,
        ignoreFocusOut: true,
      });
      if (key === undefined) return;
      if (key === "") await context.secrets.delete(API_KEY_SECRET);
      else await context.secrets.store(API_KEY_SECRET, key);
    }),
  );
  context.subscriptions.push(
    vscode.commands.registerCommand("dsx.restartServer", async () => {
      await stopClient();
      await startClient();
      if (client !== undefined) {
        void vscode.window.setStatusBarMessage("dsx: language server restarted", 3000);
      }
    }),
    vscode.commands.registerCommand("dsx.showOutput", () => output?.show()),
    // Trust granted: the workspace's .venv and the selected interpreter may now be used.
    vscode.workspace.onDidGrantWorkspaceTrust(
      () => void vscode.commands.executeCommand("dsx.restartServer"),
    ),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (
        event.affectsConfiguration("dsx.server") ||
        event.affectsConfiguration("dsx.diagnostics")
      ) {
        await offerRestart("the language server settings changed");
      }
    }),
    { dispose: () => void stopClient() },
    { dispose: () => status?.dispose() },
  );
  const interpreterWatch = await onInterpreterChange(
    () => void offerRestart("the selected Python interpreter changed"),
  );
  if (interpreterWatch !== undefined) {
    context.subscriptions.push(interpreterWatch);
  }
  const tests = testExplorer(context);
  await startClient();
  void findTests(tests);
}

export async function deactivate(): Promise<void> {
  await stopClient();
}
