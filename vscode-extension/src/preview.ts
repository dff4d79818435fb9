// The prompt preview: a read-only virtual document beside the editor showing the exact
// messages a program would send (the server's `dsx/renderPrompt`), re-rendered as the
// `.dsx` file changes. Inputs come from a test's `given`, from the user, or are shown as
// {{placeholders}}.
import * as vscode from "vscode";

export const SCHEME = "dsx-prompt";
export const METHOD = "dsx/renderPrompt";
/** Milliseconds after the last edit before the preview re-renders. */
export const DEBOUNCE_MS = 300;

/** What a preview shows: a program (or a test's program) of a `.dsx` document. */
export interface PreviewTarget {
  uri: string;
  program?: string;
  test?: string;
  inputs?: Record<string, unknown>;
}

export interface Message {
  role: string;
  content: unknown;
}

export interface Rendered {
  program: string;
  programs: string[];
  /** The program's own inputs (what `dsx run -i` takes). */
  programInputs: { name: string; type: string; required: boolean }[];
  tests: string[];
  inputs: Record<string, unknown>;
  state: { used: boolean; note?: string; path?: string };
  predictors: {
    name: string;
    signature: string;
    inputs: string[];
    placeholders: string[];
    demos: number;
    messages: Message[];
  }[];
}

/** Sends a request to the language server (the client's `sendRequest`). */
export type Request = (method: string, params: unknown) => Promise<unknown>;

function fence(text: string): string {
  let ticks = "```";
  while (text.includes(ticks)) ticks += "`";
  return `${ticks}text\n${text}\n${ticks}`;
}

function contentText(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    // Multi-part content (text and images): the text parts, images named.
    return content
      .map((part) =>
        part && typeof part === "object" && "text" in part
          ? String((part as { text: unknown }).text)
          : `[${(part as { type?: string })?.type ?? "part"}]`,
      )
      .join("\n");
  }
  return JSON.stringify(content, null, 2);
}

/** The preview's text (Markdown) for a rendered prompt. */
export function formatPreview(result: Rendered, target: PreviewTarget): string {
  const lines: string[] = [];
  const what = target.test ? `test \`${target.test}\` of ` : "";
  lines.push(`# Prompt of ${what}\`${result.program}\``, "");
  const given = Object.entries(result.inputs);
  if (given.length > 0) {
    const shown = given.map(([k, v]) => `\`${k}\` = \`${JSON.stringify(v)}\``);
    lines.push("Inputs: " + shown.join(", "));
  }
  const state = `${result.state.used ? "" : "not used — "}${result.state.note ?? ""}`;
  lines.push(`Learned state: ${state}`, "");
  for (const predictor of result.predictors) {
    const count = predictor.demos;
    const demos = count ? `, ${count} demo${count > 1 ? "s" : ""}` : "";
    lines.push(`## \`${predictor.name}\` (${predictor.signature}${demos})`, "");
    if (predictor.placeholders.length > 0) {
      const names = predictor.placeholders.map((p) => `\`${p}\``).join(", ");
      lines.push(`Not given, shown as placeholders: ${names}`, "");
    }
    for (const message of predictor.messages) {
      lines.push(`### ${message.role}`, "", fence(contentText(message.content)), "");
    }
  }
  return lines.join("\n");
}

/** The virtual document's URI for a target (one preview per program / test). */
export function previewUri(target: PreviewTarget): vscode.Uri {
  const source = vscode.Uri.parse(target.uri);
  const base = source.path.split("/").pop() ?? "file.dsx";
  const label = target.test ? `${target.test} test` : (target.program ?? "program");
  // The path names the tab (".md": shown as Markdown); the query carries the target.
  return vscode.Uri.from({
    scheme: SCHEME,
    path: `/${base} — ${label}.md`,
    query: JSON.stringify(target),
  });
}

/** The target a preview URI stands for. */
export function targetOf(uri: vscode.Uri): PreviewTarget {
  return JSON.parse(uri.query) as PreviewTarget;
}

/**
 * Renders previews for VS Code (a `TextDocumentContentProvider`) and re-renders those of a
 * document when it changes. A failed render keeps the last good text under a note saying
 * why (while typing, the file is often briefly invalid).
 */
export class PromptPreviews implements vscode.TextDocumentContentProvider {
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;
  private readonly open = new Map<string, vscode.Uri>(); // preview uri -> preview uri
  private readonly lastGood = new Map<string, string>();
  private readonly timers = new Map<string, ReturnType<typeof setTimeout>>();

  constructor(
    private readonly request: () => Request | undefined,
    private readonly trusted: () => boolean,
  ) {}

  async provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    const key = uri.toString();
    this.open.set(key, uri);
    const target = targetOf(uri);
    const send = this.request();
    if (send === undefined) {
      return this.failed(key, "the dsx language server is not running");
    }
    try {
      const result = (await send(METHOD, { ...target, allowPython: this.trusted() })) as Rendered;
      const text = formatPreview(result, target);
      this.lastGood.set(key, text);
      return text;
    } catch (error) {
      return this.failed(key, error instanceof Error ? error.message : String(error));
    }
  }

  private failed(key: string, why: string): string {
    const note = `> **Not updated:** ${why}\n\n`;
    return note + (this.lastGood.get(key) ?? "");
  }

  /** Re-render (after a pause) every preview of the document `source`. */
  documentChanged(source: string): void {
    for (const [key, uri] of this.open) {
      if (targetOf(uri).uri !== source) continue;
      const pending = this.timers.get(key);
      if (pending !== undefined) clearTimeout(pending);
      this.timers.set(
        key,
        setTimeout(() => {
          this.timers.delete(key);
          this.changed.fire(uri);
        }, DEBOUNCE_MS),
      );
    }
  }

  /** Re-render every open preview now (a state file or the server changed). */
  refreshAll(): void {
    for (const uri of this.open.values()) this.changed.fire(uri);
  }

  /** A preview document was closed: stop following it. */
  closed(uri: vscode.Uri): void {
    const key = uri.toString();
    this.open.delete(key);
    this.lastGood.delete(key);
    const pending = this.timers.get(key);
    if (pending !== undefined) clearTimeout(pending);
    this.timers.delete(key);
  }

  dispose(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.changed.dispose();
  }
}

/** Opens the preview of `target` beside the editor, keeping the focus in the editor. */
export async function showPreview(target: PreviewTarget): Promise<vscode.TextEditor> {
  const document = await vscode.workspace.openTextDocument(previewUri(target));
  return vscode.window.showTextDocument(document, {
    viewColumn: vscode.ViewColumn.Beside,
    preserveFocus: true,
    preview: false,
  });
}
