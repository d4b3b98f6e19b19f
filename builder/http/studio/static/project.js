// The project screen: chat with streamed steps, the live preview, files and versions.
// Loaded only when a project is opened. Every model output and file content is
// rendered as text (Preact escapes it); nothing here parses a string as HTML.
import { ApiError, api, events, when } from "./api.js";
import { html, useCallback, useEffect, useRef, useState } from "./lib.js";
import { Attachments, encodeImages, useAttachments } from "./attach.js";
import { ShipMenu } from "./ship.js";
import { ConfirmDialog, ErrorNote } from "./ui.js";

function firstLine(text, limit = 140) {
  const line = String(text ?? "").split("\n").find((l) => l.trim()) ?? "";
  return line.length > limit ? `${line.slice(0, limit - 1)}…` : line;
}

// --- chat -------------------------------------------------------------------------

// Fold one run event into the turn's items (texts, steps, notes) and status.
function applyEvent(turn, event) {
  const items = [...turn.items];
  const last = items[items.length - 1];
  const data = event.data;
  switch (event.event) {
    case "queued":
      // The first says the run is recorded; those with a position say where it waits
      // in the run queue, again whenever its place changes.
      if (data.position === undefined) return turn;
      return { ...turn, status: "queued", position: data.position };
    case "run_started":
      return { ...turn, runId: data.run_id, status: "running", position: null };
    case "token":
      if (last && last.kind === "text" && last.streaming) {
        items[items.length - 1] = { ...last, text: last.text + data.text };
      } else {
        items.push({ kind: "text", text: data.text, streaming: true });
      }
      return { ...turn, items };
    case "message":
      if (data.role !== "assistant") return turn;
      if (last && last.kind === "text" && last.streaming) {
        items[items.length - 1] = { kind: "text", text: data.content || last.text };
      } else if (data.content) {
        items.push({ kind: "text", text: data.content });
      }
      return { ...turn, items };
    case "tool_start":
      items.push({ kind: "step", id: data.call_id, tool: data.tool, status: "running" });
      return { ...turn, items };
    case "tool_end":
      return {
        ...turn,
        items: items.map((item) =>
          item.kind === "step" && item.id === data.call_id
            ? {
                ...item,
                status: data.ok ? "done" : "failed",
                result: firstLine(data.result),
                ms: data.duration_ms,
              }
            : item,
        ),
      };
    case "snapshot":
      items.push({ kind: "note", text: `Saved as version ${data.version}` });
      return { ...turn, items };
    case "error":
      items.push({ kind: "error", text: `${data.code}: ${data.message}` });
      return { ...turn, items };
    case "run_finished":
      return { ...turn, status: data.status, result: data };
    default:
      return turn;
  }
}

const COUNT = new Intl.NumberFormat(undefined);

// "1,234 tokens (1,000 in, 234 out) · $0.0021": a turn's usage and, when the model has a
// price, its cost.
function usage(result) {
  const input = result.input_tokens ?? 0;
  const output = result.output_tokens ?? 0;
  let text = `${COUNT.format(input + output)} tokens (${COUNT.format(input)} in, ${COUNT.format(output)} out)`;
  if (result.cost_usd !== null && result.cost_usd !== undefined) {
    const digits = result.cost_usd > 0 && result.cost_usd < 0.01 ? 4 : 2;
    text += ` · $${result.cost_usd.toFixed(digits)}`;
  }
  return text;
}

const STATUS_LABEL = { running: "running", done: "done", failed: "failed" };

function Step({ item }) {
  return html`<li class=${`step ${item.status}`} data-status=${item.status}>
    <span class="badge">${STATUS_LABEL[item.status]}</span>
    <code class="tool">${item.tool}</code>
    ${item.result && html`<span class="result">${item.result}</span>`}
  </li>`;
}

function Turn({ turn }) {
  return html`<li class="turn">
    ${turn.prompt && html`<div class="bubble user"><span class="who">You</span>
      <p class="text">${turn.prompt}</p>
      ${turn.imageCount > 0 && html`<p class="muted small">${turn.imageCount === 1
        ? "1 image attached" : `${turn.imageCount} images attached`}</p>`}</div>`}
    ${turn.status === "queued" && html`<p class="muted small queued" role="status">
      queued, ${turn.position} ahead</p>`}
    ${turn.items.length > 0 && html`<div class="bubble assistant"><span class="who">builder</span>
      <ul class="items">
        ${turn.items.map((item, index) =>
          item.kind === "step"
            ? html`<${Step} key=${item.id || index} item=${item} />`
            : html`<li key=${index} class=${`item-${item.kind}`}><p class="text">${item.text}</p></li>`,
        )}
      </ul></div>`}
    ${turn.result && html`<p class="muted small turn-end">
      ${turn.result.status === "success" ? "Finished" : `Ended: ${turn.result.status}`}
      ${" · "}<span class="usage" title="Tokens this turn used, and what they cost">${usage(turn.result)}</span>
      ${" · "}${turn.result.steps ?? 0} steps</p>`}
  </li>`;
}

function historyTurns(messages) {
  const turns = [];
  for (const message of messages) {
    if (message.role === "user") {
      const images = (message.parts || []).filter((part) => part && part.type === "image");
      turns.push({ prompt: message.content, imageCount: images.length, items: [], status: "done" });
    } else if (message.role === "assistant") {
      if (!turns.length) turns.push({ prompt: null, items: [], status: "done" });
      const turn = turns[turns.length - 1];
      if (message.content) turn.items.push({ kind: "text", text: message.content });
      // A turn's usage and cost are kept with its reply.
      const spent = (message.parts || []).find((part) => part && part.type === "usage");
      if (spent) turn.result = spent;
    }
  }
  return turns;
}

function Chat({ projectId, initialPrompt, onRunFinished, onSnapshot }) {
  const [turns, setTurns] = useState([]);
  const [prompt, setPrompt] = useState("");
  const [running, setRunning] = useState(null); // {runId}
  const [conflict, setConflict] = useState(null); // {text, images} a 409 refused
  const [busy, setBusy] = useState(false); // encoding and sending a message
  const attach = useAttachments();
  const [error, setError] = useState(null);
  const logRef = useRef(null);
  const started = useRef(false);

  useEffect(() => {
    api("GET", `/api/projects/${projectId}/messages?limit=200`)
      .then((page) => setTurns((live) => [...historyTurns(page.items), ...live]))
      .catch(setError);
  }, [projectId]);

  useEffect(() => {
    const log = logRef.current;
    if (log) log.scrollTop = log.scrollHeight;
  }, [turns]);

  // Show a run's events as one turn until it ends (a new run, or one already working).
  const follow = useCallback(
    async (response, runId, prompt, imageCount = 0) => {
      setRunning({ runId });
      setTurns((old) => [...old, { prompt, imageCount, items: [], status: "running", runId }]);
      const update = (change) =>
        setTurns((old) => old.map((t) => (t.runId === runId ? change(t) : t)));
      let finished = null;
      try {
        for await (const event of events(response)) {
          update((turn) => applyEvent(turn, event));
          if (event.event === "snapshot") onSnapshot();
          if (event.event === "run_finished") finished = event.data;
        }
      } catch (failure) {
        setError(new Error(`the event stream broke: ${failure.message}`));
      } finally {
        setRunning(null);
        onRunFinished(finished);
      }
    },
    [projectId],
  );

  // A run already working when the project is opened (another tab, a reload): follow it.
  useEffect(() => {
    (async () => {
      const [run] = await api("GET", `/threads/${projectId}/runs?status=running&limit=1`);
      if (!run || started.current) return;
      const response = await api(
        "GET",
        `/api/projects/${projectId}/chat/${run.run_id}/stream`,
        { raw: true },
      );
      follow(response, run.run_id, null);
    })().catch(() => {}); // nothing to follow: the chat works as usual
  }, [projectId]);

  const send = useCallback(
    async (text, multitask = "reject", images = undefined) => {
      setError(null);
      setConflict(null);
      let response;
      try {
        const body = { prompt: text, multitask };
        if (images && images.length) body.images = images;
        response = await api("POST", `/api/projects/${projectId}/chat`, { body, raw: true });
      } catch (failure) {
        if (failure instanceof ApiError && failure.status === 409) setConflict({ text, images });
        else setError(failure);
        return false;
      }
      await follow(response, response.headers.get("x-run-id"), text, images ? images.length : 0);
      return true;
    },
    [projectId, follow],
  );

  useEffect(() => {
    if (initialPrompt && !started.current) {
      started.current = true;
      send(initialPrompt.prompt, "reject", initialPrompt.images);
    }
  }, [initialPrompt]);

  const submit = async (event) => {
    event.preventDefault();
    const text = prompt.trim();
    if (!text || running || busy) return;
    setBusy(true);
    try {
      const images = await encodeImages(attach.images);
      setPrompt("");
      if (await send(text, "reject", images)) attach.clear();
      else setPrompt(text);
    } finally {
      setBusy(false);
    }
  };
  const queue = async () => {
    const { text, images } = conflict;
    if (await send(text, "enqueue", images)) {
      attach.clear();
      setPrompt("");
    }
  };
  const keys = (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) submit(event);
  };
  const cancel = async () => {
    try {
      await api("POST", `/api/projects/${projectId}/chat/${running.runId}/cancel`);
    } catch (failure) {
      setError(failure);
    }
  };
  return html`<section class="chat" aria-labelledby="chat-title">
    <h2 id="chat-title" class="visually-hidden">Chat</h2>
    <div class="log" role="log" aria-label="Conversation" ref=${logRef} tabindex="0">
      ${turns.length === 0 && html`<p class="muted">Describe what to build or change.</p>`}
      <ol class="turns">
        ${turns.map((turn, index) => html`<${Turn} key=${turn.runId || index} turn=${turn} />`)}
      </ol>
    </div>
    ${conflict && html`<div class="notice" role="alert">
      <p>This project already has a run in progress. Wait for it, or queue your message to
        run after it.</p>
      <div class="row"><button type="button" class="primary"
        onClick=${queue}>Queue my message</button>
        <button type="button" onClick=${() => { setPrompt(conflict.text); setConflict(null); }}>
          Keep editing</button></div>
    </div>`}
    <${ErrorNote} error=${error} />
    <form class="composer" onSubmit=${submit} onDrop=${attach.drop} onDragOver=${attach.dragOver}>
      <label for="chat-prompt" class="visually-hidden">Message</label>
      <textarea id="chat-prompt" rows="2" maxlength="20000" value=${prompt}
        placeholder="Ask for a change (Ctrl+Enter sends)" onKeyDown=${keys} onPaste=${attach.paste}
        onInput=${(e) => setPrompt(e.target.value)}></textarea>
      <${Attachments} id="chat-images" images=${attach.images} refused=${attach.refused}
        onAdd=${attach.add} onRemove=${attach.remove} />
      <div class="row">
        <button class="primary" type="submit" disabled=${!!running || busy}>Send</button>
        ${running && html`<button type="button" class="danger" onClick=${cancel}>Cancel run</button>
          <span class="muted small" role="status">Working…</span>`}
      </div>
    </form>
  </section>`;
}

// --- preview ----------------------------------------------------------------------

const DEVICES = [
  { id: "mobile", label: "Mobile", width: "375px" },
  { id: "tablet", label: "Tablet", width: "768px" },
  { id: "desktop", label: "Desktop", width: "100%" },
];

function Preview({ projectId, session, version }) {
  const [server, setServer] = useState(null);
  const [device, setDevice] = useState("desktop");
  const [reloads, setReloads] = useState(0);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const shown = useRef(null);
  // A new version reloads the preview, unless its server already showed the change in
  // place (hot module replacement keeps the page and its state); Reload always does.
  const refresh = useCallback(
    async (always) => {
      try {
        const next = await api("GET", `/api/sandbox/${projectId}/dev-server`);
        const last = shown.current;
        // The same server process (its preview URL carries a fresh token each time).
        const inPlace =
          always !== true && next.hot_reload && last && last.running && last.started_at === next.started_at;
        // In place, the page keeps its address: a new one would load it again.
        const kept = inPlace ? { ...next, preview_url: last.preview_url } : next;
        shown.current = kept;
        setServer(kept);
        if (!inPlace) setReloads((n) => n + 1);
      } catch (failure) {
        setError(failure);
      }
    },
    [projectId],
  );
  useEffect(() => {
    refresh();
  }, [version]);
  const start = async () => {
    setBusy(true);
    setError(null);
    try {
      const started = await api("POST", `/api/sandbox/${projectId}/dev-server`);
      shown.current = started;
      setServer(started);
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  const url = server && server.running ? server.preview_url : null;
  const width = DEVICES.find((d) => d.id === device).width;
  return html`<div class="preview stack">
    <div class="row wrap toolbar">
      <div role="radiogroup" aria-label="Preview width" class="row">
        ${DEVICES.map(
          (d) => html`<label key=${d.id} class="choice">
            <input type="radio" name="device" value=${d.id} checked=${device === d.id}
              onChange=${() => setDevice(d.id)} />${d.label}</label>`,
        )}
      </div>
      <span class="spacer"></span>
      <button type="button" onClick=${() => refresh(true)} disabled=${!server}>Reload</button>
      ${url && html`<a class="button" href=${url} target="_blank" rel="noopener noreferrer">
        Open in new tab</a>`}
    </div>
    <${ErrorNote} error=${error} />
    ${url && session.previews
      ? html`<div class="frame-wrap"><iframe key=${reloads} src=${url} title="Site preview"
          style=${{ width }} sandbox="allow-scripts allow-forms allow-same-origin allow-popups allow-modals"
          referrerpolicy="no-referrer"></iframe></div>`
      : url
        ? html`<p class="notice">This server does not serve previews on their own origin
            (set BUILDER_PREVIEW_PORT), so the preview opens in a new tab only.</p>`
        : html`<div class="notice stack"><p role="status">
            ${server === null ? "Checking the preview…" : "The preview is not running."}</p>
            ${server && html`<div><button type="button" class="primary" onClick=${start}
              disabled=${busy}>${busy ? "Starting…" : "Start preview"}</button></div>`}</div>`}
    ${server && server.logs && server.logs.length > 0 && html`<details>
      <summary>Dev server log</summary><pre class="code">${server.logs.join("\n")}</pre></details>`}
  </div>`;
}

// --- files ------------------------------------------------------------------------

// The highlighter and the diff view (./code.js) load the first time either is shown;
// until then the same text is shown plain.
let codeModule = null;
function useCode() {
  const [mod, setMod] = useState(codeModule);
  useEffect(() => {
    if (mod) return;
    import("./code.js").then(
      (loaded) => {
        codeModule = loaded;
        setMod(loaded);
      },
      () => {}, // not loaded (offline): the text stays plain
    );
  }, []);
  return mod;
}

function CodeView({ path, text }) {
  const code = useCode();
  if (code) return html`<${code.Code} path=${path} text=${text} />`;
  return html`<pre class="code" tabindex="0" aria-label=${`Contents of ${path}`}><code>${text}</code></pre>`;
}

function DiffView({ patch }) {
  const code = useCode();
  if (code) return html`<${code.Diff} patch=${patch} />`;
  return html`<pre class="code diff" tabindex="0">${patch || "(no text changes)"}</pre>`;
}

function Files({ projectId, version, onSaved }) {
  const [tree, setTree] = useState(null);
  const [open, setOpen] = useState(null);
  const [draft, setDraft] = useState(null); // the text being edited, or null
  const [conflict, setConflict] = useState(null);
  const [status, setStatus] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    api("GET", `/api/projects/${projectId}/files`).then(setTree, setError);
  }, [projectId, version]);
  const fileUrl = (path) =>
    `/api/projects/${projectId}/files/${path.split("/").map(encodeURIComponent).join("/")}`;
  const show = async (path, keepDraft = false) => {
    setError(null);
    setConflict(null);
    setStatus(null);
    try {
      setOpen(await api("GET", fileUrl(path)));
      if (!keepDraft) setDraft(null);
    } catch (failure) {
      setError(failure);
    }
  };
  const save = async (event) => {
    event.preventDefault();
    setError(null);
    setConflict(null);
    try {
      const saved = await api("PUT", fileUrl(open.path), {
        body: { content: draft, base_sha256: open.sha256 },
      });
      setDraft(null);
      await show(open.path);
      setStatus(saved.version ? `Saved as version ${saved.version}.` : "Nothing changed.");
      onSaved();
    } catch (failure) {
      if (failure instanceof ApiError && failure.code === "concurrent_modification") {
        setConflict(failure);
      } else {
        setError(failure);
      }
    }
  };
  const editor = open && draft !== null;
  return html`<div class="files">
    <nav aria-label="Files" class="tree">
      ${tree && tree.files.length === 0 && html`<p class="muted">No files yet.</p>`}
      <ul>
        ${(tree ? tree.files : []).map(
          (f) => html`<li key=${f.path}><button type="button" class="link"
            aria-current=${open && open.path === f.path ? "true" : "false"}
            onClick=${() => show(f.path)}>${f.path}</button></li>`,
        )}
      </ul>
    </nav>
    <div class="viewer stack">
      <${ErrorNote} error=${error} />
      ${status && html`<p class="muted" role="status">${status}</p>`}
      ${conflict && html`<div class="notice" role="alert">
        <p>Not saved: ${open.path} changed since you opened it, and your edit would
          overwrite that change. Your text is kept below; load the latest version, then
          redo your edit on it.</p>
        <button type="button" onClick=${() => show(open.path, true)}>Load the latest</button>
      </div>`}
      ${!open && html`<p class="muted">Choose a file to read it.</p>`}
      ${open && html`<div class="row wrap">
          <h3 class="path">${open.path} <span class="muted small">(${open.size} bytes,
            version ${open.version})</span></h3>
          <span class="spacer"></span>
          ${open.encoding === "utf-8" && !editor &&
          html`<button type="button" onClick=${() => { setDraft(open.content); setStatus(null); }}>
            Edit</button>`}
        </div>`}
      ${editor
        ? html`<form class="stack" onSubmit=${save}>
            <label for="file-editor" class="visually-hidden">Contents of ${open.path}</label>
            <textarea id="file-editor" class="code" rows="20" spellcheck="false"
              value=${draft} onInput=${(e) => setDraft(e.target.value)}></textarea>
            <div class="row">
              <button type="submit" class="primary">Save</button>
              <button type="button" onClick=${() => { setDraft(null); setConflict(null); }}>
                Cancel</button>
            </div>
          </form>`
        : open &&
          (open.encoding === "utf-8"
            ? html`<${CodeView} path=${open.path} text=${open.content} />`
            : html`<p class="muted">Binary file.</p>`)}
    </div>
  </div>`;
}

// --- versions ---------------------------------------------------------------------

function Versions({ projectId, version, onRestored }) {
  const [items, setItems] = useState([]);
  const [cursor, setCursor] = useState(null);
  const [diffs, setDiffs] = useState({});
  const [restoring, setRestoring] = useState(null);
  const [error, setError] = useState(null);
  const [status, setStatus] = useState(null);
  const load = async (after) => {
    try {
      const params = new URLSearchParams({ limit: "50" });
      if (after) params.set("cursor", after);
      const page = await api("GET", `/api/projects/${projectId}/snapshots?${params}`);
      setItems((old) => (after ? [...old, ...page.items] : page.items));
      setCursor(page.next_cursor);
    } catch (failure) {
      setError(failure);
    }
  };
  useEffect(() => {
    load(null);
  }, [projectId, version]);
  const toggleDiff = async (snapshot) => {
    if (diffs[snapshot.version]) {
      setDiffs(({ [snapshot.version]: _, ...rest }) => rest);
      return;
    }
    try {
      const from = snapshot.parent_version ?? snapshot.version - 1;
      const diff = await api(
        "GET",
        `/api/projects/${projectId}/snapshots/diff?from_version=${from}&to_version=${snapshot.version}`,
      );
      setDiffs((old) => ({ ...old, [snapshot.version]: diff }));
    } catch (failure) {
      setError(failure);
    }
  };
  const restore = async () => {
    const target = restoring;
    setRestoring(null);
    setError(null);
    try {
      const result = await api("POST", `/api/projects/${projectId}/restore`, {
        body: { version: target.version },
      });
      setStatus(
        result.new_version
          ? `Restored version ${target.version} as version ${result.new_version}.`
          : `Version ${target.version} is already current.`,
      );
      onRestored();
    } catch (failure) {
      setError(failure);
    }
  };
  const latest = items.length ? items[0].version : null;
  return html`<div class="versions stack">
    ${status && html`<p role="status" class="muted">${status}</p>`}
    <${ErrorNote} error=${error} />
    ${items.length === 0 && html`<p class="muted">No versions yet.</p>`}
    <ol class="timeline">
      ${items.map(
        (s) => html`<li key=${s.version} class="card">
          <div class="row wrap">
            <strong>Version ${s.version}</strong>
            ${s.version === latest && html`<span class="badge">current</span>`}
            <span class="spacer"></span>
            <span class="muted small">${when(s.created_at)}</span>
          </div>
          <p>${s.summary || "(no summary)"}</p>
          <p class="muted small">${s.file_count} files · ${s.changed_paths} changed</p>
          <div class="row">
            <button type="button" aria-expanded=${diffs[s.version] ? "true" : "false"}
              onClick=${() => toggleDiff(s)}>${diffs[s.version] ? "Hide changes" : "Show changes"}</button>
            ${s.version !== latest && html`<button type="button"
              onClick=${() => setRestoring(s)}>Restore version ${s.version}</button>`}
          </div>
          ${diffs[s.version] && html`<${DiffView} patch=${diffs[s.version].patch} />`}
        </li>`,
      )}
    </ol>
    ${cursor && html`<button type="button" onClick=${() => load(cursor)}>Load more</button>`}
    ${restoring && html`<${ConfirmDialog} title=${`Restore version ${restoring.version}?`}
      body="Its files become the newest version and are written to the preview. Later versions stay in the timeline."
      confirm="Restore" onConfirm=${restore} onClose=${() => setRestoring(null)} />`}
  </div>`;
}

// --- the screen -------------------------------------------------------------------

const TABS = [
  { id: "preview", label: "Preview" },
  { id: "files", label: "Files" },
  { id: "versions", label: "Versions" },
];

function Tabs({ current, onChange }) {
  const keys = (event) => {
    const index = TABS.findIndex((t) => t.id === current);
    let next = null;
    if (event.key === "ArrowRight") next = TABS[(index + 1) % TABS.length];
    if (event.key === "ArrowLeft") next = TABS[(index + TABS.length - 1) % TABS.length];
    if (next) {
      event.preventDefault();
      onChange(next.id);
      document.getElementById(`tab-${next.id}`).focus();
    }
  };
  return html`<div role="tablist" aria-label="Project views" class="tabs" onKeyDown=${keys}>
    ${TABS.map(
      (t) => html`<button key=${t.id} id=${`tab-${t.id}`} role="tab" type="button"
        aria-selected=${current === t.id ? "true" : "false"} aria-controls=${`panel-${t.id}`}
        tabindex=${current === t.id ? "0" : "-1"} onClick=${() => onChange(t.id)}>${t.label}</button>`,
    )}
  </div>`;
}

export function ProjectScreen({ id, session, initialPrompt }) {
  const [project, setProject] = useState(null);
  const [error, setError] = useState(null);
  const [tab, setTab] = useState("preview");
  const [version, setVersion] = useState(0); // bumped whenever files may have changed
  useEffect(() => {
    api("POST", `/api/projects/${id}/open`)
      .then((p) => {
        setProject(p);
        document.title = `${p.name} · builder studio`;
      })
      .catch(setError);
  }, [id]);
  const bump = useCallback(() => setVersion((v) => v + 1), []);
  // A run that changed the site while its preview runs: a new screenshot becomes the
  // project's thumbnail on the projects screen (best effort: no browser, no thumbnail).
  const runFinished = useCallback(
    (result) => {
      bump();
      if (!result || !result.snapshot_version) return;
      api("GET", `/api/sandbox/${id}/dev-server`)
        .then((server) => server.running && api("POST", `/api/projects/${id}/screenshot`, { raw: true }))
        .catch(() => {});
    },
    [id],
  );
  if (error) {
    return html`<main id="main" class="stack"><h1>Project not available</h1>
      <${ErrorNote} error=${error} /><p><a href="#/">Back to projects</a></p></main>`;
  }
  if (!project) return html`<main id="main"><p role="status">Opening the project…</p></main>`;
  return html`<main id="main" class="project-screen">
    <div class="row wrap heading"><a href="#/">← Projects</a><h1>${project.name}</h1>
      <span class="spacer"></span><${ShipMenu} projectId=${id} version=${version} /></div>
    <div class="split">
      <${Chat} projectId=${id} initialPrompt=${initialPrompt} onRunFinished=${runFinished}
        onSnapshot=${bump} />
      <section class="side" aria-label="Preview, files and versions">
        <${Tabs} current=${tab} onChange=${setTab} />
        <div role="tabpanel" id=${`panel-${tab}`} aria-labelledby=${`tab-${tab}`} class="panel">
          ${tab === "preview" && html`<${Preview} projectId=${id} session=${session} version=${version} />`}
          ${tab === "files" && html`<${Files} projectId=${id} version=${version} onSaved=${bump} />`}
          ${tab === "versions" && html`<${Versions} projectId=${id} version=${version}
            onRestored=${bump} />`}
        </div>
      </section>
    </div>
  </main>`;
}
