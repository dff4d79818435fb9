// The Python extension's selected interpreter (ms-python.python), when it is installed.
// Only its public API is used; any failure means "no interpreter" — discovery goes on to PATH.
import * as vscode from "vscode";

export const PYTHON_EXTENSION_ID = "ms-python.python";

interface EnvironmentPath {
  path?: string;
}

interface PythonApi {
  environments?: {
    getActiveEnvironmentPath?(resource?: vscode.Uri): EnvironmentPath | undefined;
    resolveEnvironment?(
      env: EnvironmentPath | string,
    ): Promise<{ executable?: { uri?: vscode.Uri } } | undefined>;
    onDidChangeActiveEnvironmentPath?: vscode.Event<unknown>;
  };
  settings?: {
    getExecutionDetails?(resource?: vscode.Uri): { execCommand?: string[] } | undefined;
  };
}

async function pythonApi(): Promise<PythonApi | undefined> {
  const extension = vscode.extensions.getExtension<PythonApi>(PYTHON_EXTENSION_ID);
  if (extension === undefined) {
    return undefined;
  }
  return extension.isActive ? extension.exports : await extension.activate();
}

/** The interpreter the Python extension has selected for `resource`, or undefined. */
export async function selectedInterpreter(resource?: vscode.Uri): Promise<string | undefined> {
  try {
    const api = await pythonApi();
    const environments = api?.environments;
    const active = environments?.getActiveEnvironmentPath?.(resource);
    if (active !== undefined) {
      const resolved = await environments?.resolveEnvironment?.(active);
      const executable = resolved?.executable?.uri?.fsPath ?? active.path;
      if (executable) {
        return executable;
      }
    }
    // The older API: the command line that runs Python (one element: the interpreter).
    const command = api?.settings?.getExecutionDetails?.(resource)?.execCommand;
    if (Array.isArray(command) && command.length === 1 && command[0]) {
      return command[0];
    }
  } catch {
    // A Python extension that fails to answer is no interpreter.
  }
  return undefined;
}

/** Calls `listener` when the selected interpreter changes (when the API can say so). */
export async function onInterpreterChange(
  listener: () => void,
): Promise<vscode.Disposable | undefined> {
  try {
    const event = (await pythonApi())?.environments?.onDidChangeActiveEnvironmentPath;
    return event === undefined ? undefined : event(() => listener());
  } catch {
    return undefined;
  }
}
