// Finding the `dsx` to run (the setting, the workspace's .venv, the selected Python
// interpreter, PATH) and saying clearly which one, or why none can run.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export interface Resolved {
  /** The executable to spawn, or undefined when none was found. */
  command?: string;
  /** Why it could not be found (for the error message). */
  problem?: string;
}

/** Expands `~` and `${workspaceFolder}` / `${userHome}` in a configured path. */
export function expandPath(value: string, workspaceFolder: string | undefined): string {
  let out = value.trim();
  if (out === "~" || out.startsWith("~/") || out.startsWith("~\\")) {
    out = path.join(os.homedir(), out.slice(1));
  }
  out = out.replace(/\$\{userHome\}/g, os.homedir());
  if (workspaceFolder !== undefined) {
    out = out.replace(/\$\{workspaceFolder\}/g, workspaceFolder);
  }
  return out;
}

export function isExecutable(file: string): boolean {
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile()) {
      return false;
    }
    if (process.platform === "win32") {
      return true;
    }
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Looks `name` up on PATH (with PATHEXT on Windows). */
export function which(name: string, envPath = process.env.PATH ?? ""): string | undefined {
  const exts =
    process.platform === "win32"
      ? (process.env.PATHEXT ?? ".EXE;.CMD;.BAT").split(";").concat([""])
      : [""];
  for (const dir of envPath.split(path.delimiter)) {
    if (!dir) {
      continue;
    }
    for (const ext of exts) {
      const candidate = path.join(dir, name + ext);
      if (isExecutable(candidate)) {
        return candidate;
      }
    }
  }
  return undefined;
}

/** Resolves the configured server path: an absolute or relative file, or a name on PATH. */
export function resolveServer(configured: string, workspaceFolder: string | undefined): Resolved {
  const value = expandPath(configured || "dsx", workspaceFolder);
  const looksLikePath = value.includes("/") || value.includes("\\");
  if (looksLikePath) {
    const file = path.isAbsolute(value) || workspaceFolder === undefined
      ? path.resolve(value)
      : path.resolve(workspaceFolder, value);
    if (isExecutable(file)) {
      return { command: file };
    }
    return {
      problem: fs.existsSync(file)
        ? `${file} is not executable`
        : `${file} does not exist`,
    };
  }
  const found = which(value);
  if (found !== undefined) {
    return { command: found };
  }
  return { problem: `\`${value}\` was not found on PATH` };
}

// ---- discovery: which dsx to run -----------------------------------------------------------

/** Where the dsx that runs came from (said in the output and the language status). */
export type Source = "setting" | "workspace .venv" | "Python interpreter" | "PATH";

/** A dsx to run: `command ...args lsp` starts the server, `command ...args run ...` a program. */
export interface Found {
  command: string;
  /** Arguments before the dsx sub-command: `[]` for the script, `["-m", "dsx"]` for a Python. */
  args: string[];
  source: Source;
}

export interface Discovery {
  found?: Found;
  /** What was looked at, in order, and why it was not used (for the error message). */
  tried: string[];
}

export interface DiscoverOptions {
  /** `dsx.server.path` when the user set it; undefined when left at its default. */
  configured?: string;
  /** The workspace folder (for the `.venv` and `${workspaceFolder}`). */
  folder?: string;
  /** Workspace trust: an untrusted workspace's `.venv` and interpreter are never run. */
  trusted: boolean;
  /** The Python extension's selected interpreter, when it is installed and has one. */
  interpreter?: string;
  envPath?: string;
  platform?: NodeJS.Platform;
  /** Whether a Python can import dsx (default: ask it, without importing dsx). */
  hasDsx?: (python: string) => boolean;
}

/** The scripts directory of the virtual environment `venv` and the names in it. */
export function venvLayout(venv: string, platform: NodeJS.Platform = process.platform) {
  const win = platform === "win32";
  const bin = path.join(venv, win ? "Scripts" : "bin");
  return {
    dsx: path.join(bin, win ? "dsx.exe" : "dsx"),
    python: path.join(bin, win ? "python.exe" : "python"),
  };
}

/** Whether `python` finds the dsx package (a quick `find_spec`, dsx itself is not imported). */
export function pythonHasDsx(python: string): boolean {
  const probe = spawnSync(
    python,
    ["-c", "import importlib.util, sys; sys.exit(importlib.util.find_spec('dsx') is None)"],
    { timeout: 15000, stdio: "ignore", windowsHide: true },
  );
  return probe.status === 0;
}

/** The dsx next to a Python (its environment's script), else `python -m dsx` when it has dsx. */
function fromPython(
  python: string,
  source: Source,
  opts: DiscoverOptions,
  tried: string[],
): Found | undefined {
  const platform = opts.platform ?? process.platform;
  const script = path.join(path.dirname(python), platform === "win32" ? "dsx.exe" : "dsx");
  if (isExecutable(script)) {
    return { command: script, args: [], source };
  }
  if (!isExecutable(python)) {
    tried.push(`${source}: ${python} does not exist`);
    return undefined;
  }
  if ((opts.hasDsx ?? pythonHasDsx)(python)) {
    return { command: python, args: ["-m", "dsx"], source };
  }
  tried.push(`${source}: ${python} has no dsx installed`);
  return undefined;
}

/**
 * Finds the dsx to run: the `dsx.server.path` setting when the user set one; else the
 * workspace's `.venv`; else the Python extension's selected interpreter; else `dsx` on PATH.
 * In an untrusted workspace only the setting (user-level: VS Code ignores workspace values
 * of restricted settings) and PATH are used, so nothing from the workspace is executed.
 */
export function discoverServer(opts: DiscoverOptions): Discovery {
  const tried: string[] = [];
  if (opts.configured !== undefined && opts.configured.trim() !== "") {
    const resolved = resolveServer(opts.configured, opts.folder);
    if (resolved.command !== undefined) {
      return { found: { command: resolved.command, args: [], source: "setting" }, tried };
    }
    tried.push(`the setting dsx.server.path: ${resolved.problem}`);
    return { tried }; // an explicit choice that fails is reported, not silently replaced
  }
  if (!opts.trusted) {
    tried.push("the workspace's .venv and the selected interpreter: not used in Restricted Mode");
  } else {
    if (opts.folder !== undefined) {
      const venv = venvLayout(path.join(opts.folder, ".venv"), opts.platform);
      const found = fromPython(venv.python, "workspace .venv", opts, tried);
      if (found !== undefined) {
        return { found, tried };
      }
    }
    if (opts.interpreter !== undefined) {
      const found = fromPython(opts.interpreter, "Python interpreter", opts, tried);
      if (found !== undefined) {
        return { found, tried };
      }
    }
  }
  const onPath = which("dsx", opts.envPath);
  if (onPath !== undefined) {
    return { found: { command: onPath, args: [], source: "PATH" }, tried };
  }
  tried.push("PATH: no `dsx` on it");
  return { tried };
}

/** One line saying which dsx is used, e.g. "/w/.venv/bin/dsx (workspace .venv)". */
export function describeFound(found: Found): string {
  const line = [found.command, ...found.args].join(" ");
  return `${line} (${found.source})`;
}
