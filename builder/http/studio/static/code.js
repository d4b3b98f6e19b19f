// The code viewer's highlighting and the diff view, loaded the first time a file or a
// version's changes are shown. Prism only splits the text into typed tokens
// (Prism.tokenize); each token becomes an element whose content Preact sets as text,
// so a file's content is never parsed as HTML.
import Prism from "./vendor/prism.module.js";
import { html } from "./lib.js";

const BY_EXTENSION = {
  html: "markup", htm: "markup", xml: "markup", svg: "markup", vue: "markup",
  css: "css", js: "javascript", mjs: "javascript", cjs: "javascript", jsx: "jsx",
  ts: "typescript", tsx: "tsx", json: "json", md: "markdown", markdown: "markdown",
  py: "python", yml: "yaml", yaml: "yaml", sh: "bash",
};
// Beyond this, tokenizing would make the page wait: the text is shown plain.
const MAX_HIGHLIGHT = 200_000;

export function languageOf(path) {
  const extension = path.toLowerCase().split(".").pop();
  return BY_EXTENSION[extension] ?? null;
}

function render(token, key) {
  if (typeof token === "string") return token;
  const aliases = token.alias ? [].concat(token.alias) : [];
  const names = [token.type, ...aliases].map((name) => `tok-${name}`).join(" ");
  const content = Array.isArray(token.content)
    ? token.content.map((inner, index) => render(inner, index))
    : render(token.content, 0);
  return html`<span key=${key} class=${names}>${content}</span>`;
}

export function Code({ path, text }) {
  const language = languageOf(path);
  const grammar = language && Prism.languages[language];
  const body =
    grammar && text.length <= MAX_HIGHLIGHT
      ? Prism.tokenize(text, grammar).map((token, index) => render(token, index))
      : text;
  return html`<pre class="code" tabindex="0" aria-label=${`Contents of ${path}`}
    data-language=${language || "text"}><code>${body}</code></pre>`;
}

const LINE_KIND = [
  ["+++", "file"], ["---", "file"], ["diff ", "file"], ["@@", "hunk"], ["+", "add"], ["-", "del"],
];

export function Diff({ patch }) {
  if (!patch) return html`<pre class="code diff" tabindex="0">(no text changes)</pre>`;
  const lines = patch.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return html`<pre class="code diff" tabindex="0">${lines.map((line, index) => {
    const kind = (LINE_KIND.find(([prefix]) => line.startsWith(prefix)) || [null, "same"])[1];
    return html`<span key=${index} class=${`d-${kind}`}>${line}${"\n"}</span>`;
  })}</pre>`;
}
