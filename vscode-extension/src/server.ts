// Finding the `dsx` executable the settings name, and saying clearly why it cannot run.
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

function isExecutable(file: string): boolean {
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
