// The prompt preview in the extension (issue 18, item 1): the text it shows for a rendered
// prompt, its virtual document URIs, re-rendering as the .dsx file changes, and keeping the
// last good text when a render fails. The VS Code API is a stand-in (_support.mjs); the
// request itself is tested against the real server in lsp_client.test.mjs.
import assert from "node:assert/strict";
import { test } from "node:test";

import { load, vscode } from "./_support.mjs";

const [preview] = load("preview");
const { DEBOUNCE_MS, METHOD, PromptPreviews, formatPreview, previewUri, showPreview, targetOf } =
  preview;

const RESULT = {
  program: "qa",
  programs: ["qa"],
  tests: ["capital"],
  inputs: { question: "Capital of France?" },
  state: { used: true, note: "build/qa.state.json (BootstrapFewShot, score 91.00)" },
  predictors: [
    {
      name: "predict",
      signature: "QA",
      inputs: ["question", "context"],
      placeholders: ["context"],
      demos: 2,
      messages: [
        { role: "system", content: "Answer briefly.\n```not a fence```" },
        { role: "user", content: [{ type: "text", text: "Capital of France?" }, { type: "image_url" }] },
      ],
    },
  ],
};

test("the preview text: program, inputs, state, each predictor's messages", () => {
  const text = formatPreview(RESULT, { uri: "file:///w/qa.dsx", test: "capital" });
  assert.match(text, /^# Prompt of test `capital` of `qa`/);
  assert.match(text, /Inputs: `question` = `"Capital of France\?"`/);
  assert.match(text, /Learned state: build\/qa\.state\.json \(BootstrapFewShot/);
  assert.match(text, /## `predict` \(QA, 2 demos\)/);
  assert.match(text, /Not given, shown as placeholders: `context`/);
  assert.match(text, /### system\n\n````text\nAnswer briefly\.\n```not a fence```\n````/);
  assert.match(text, /### user\n\n```text\nCapital of France\?\n\[image_url\]\n```/);
  const unused = formatPreview({ ...RESULT, state: { used: false, note: "not optimized" } }, {
    uri: "file:///w/qa.dsx",
  });
  assert.match(unused, /^# Prompt of `qa`/);
  assert.match(unused, /Learned state: not used — not optimized/);
});

test("one virtual document per program or test, carrying its target", () => {
  const target = { uri: "file:///w/my%20qa.dsx", program: "qa", test: "capital" };
  const uri = previewUri(target);
  assert.equal(uri.scheme, "dsx-prompt");
  assert.equal(uri.path, "/my qa.dsx — capital test.md");
  assert.deepEqual(targetOf(uri), target);
  assert.equal(previewUri({ uri: "file:///w/a.dsx", program: "p" }).path, "/a.dsx — p.md");
});

test("renders through the server, keeps the last good text when a render fails", async () => {
  const sent = [];
  let answer = RESULT;
  let trusted = false;
  let running = true;
  const previews = new PromptPreviews(
    () =>
      running
        ? async (method, params) => {
            sent.push([method, params]);
            if (answer instanceof Error) throw answer;
            return answer;
          }
        : undefined,
    () => trusted,
  );
  const target = { uri: "file:///w/qa.dsx", test: "capital" };
  const uri = previewUri(target);
  const first = await previews.provideTextDocumentContent(uri);
  assert.match(first, /## `predict`/);
  assert.deepEqual(sent, [[METHOD, { ...target, allowPython: false }]]);
  trusted = true;
  answer = new Error("the file has 1 error(s); fix them to update the preview");
  const second = await previews.provideTextDocumentContent(uri);
  assert.equal(sent[1][1].allowPython, true); // workspace trust lets Python modules render
  assert.ok(second.startsWith("> **Not updated:** the file has 1 error(s)"));
  assert.ok(second.endsWith(first)); // the last good prompt stays visible
  running = false;
  assert.match(await previews.provideTextDocumentContent(uri), /language server is not running/);
  previews.dispose();
});

test("edits re-render that document's previews once, after a pause", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const previews = new PromptPreviews(() => async () => RESULT, () => true);
  const mine = previewUri({ uri: "file:///w/qa.dsx", program: "qa" });
  const other = previewUri({ uri: "file:///w/other.dsx", program: "o" });
  await previews.provideTextDocumentContent(mine);
  await previews.provideTextDocumentContent(other);
  const fired = [];
  previews.onDidChange((uri) => fired.push(uri.path));
  previews.documentChanged("file:///w/qa.dsx");
  t.mock.timers.tick(DEBOUNCE_MS - 1);
  previews.documentChanged("file:///w/qa.dsx"); // typing on: the pause starts again
  t.mock.timers.tick(DEBOUNCE_MS - 1);
  assert.deepEqual(fired, []);
  t.mock.timers.tick(1);
  assert.deepEqual(fired, ["/qa.dsx — qa.md"]);
  previews.refreshAll();
  assert.deepEqual(fired.slice(1).sort(), ["/other.dsx — o.md", "/qa.dsx — qa.md"]);
  // A closed preview is no longer followed.
  previews.closed(mine);
  previews.documentChanged("file:///w/qa.dsx");
  t.mock.timers.tick(DEBOUNCE_MS);
  assert.equal(fired.length, 3);
  previews.dispose();
});

test("the preview opens beside the editor without taking the focus", async () => {
  const opened = [];
  vscode.workspace.openTextDocument = async (uri) => ({ uri });
  vscode.window.showTextDocument = async (document, options) => {
    opened.push([document.uri.path, options]);
    return {};
  };
  await showPreview({ uri: "file:///w/qa.dsx", program: "qa" });
  assert.deepEqual(opened, [
    ["/qa.dsx — qa.md", { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true, preview: false }],
  ]);
});
