// Shipping a version: download it as an archive, push it to a git remote, publish it to
// a static host. Each opens a dialog that shows progress while it works and the link it
// made (or what failed). Push lists the git publishers; Publish lists every other one
// the server has (plugins' included).
import { api } from "./api.js";
import { html, useEffect, useRef, useState } from "./lib.js";
import { ErrorNote } from "./ui.js";

const PUSHERS = new Set(["git", "github"]);
// The integration (a user's token for a provider) each built-in publisher deploys with.
const PROVIDERS = { github: "GitHub", netlify: "Netlify" };

// The option fields each built-in publisher takes; a plugin's publisher uses the settings
// stored on its target.
const FIELDS = {
  git: [
    { name: "url", label: "Remote URL", type: "url", required: true, hint: "https://host/owner/repo.git" },
    { name: "branch", label: "Branch", placeholder: "main" },
    { name: "username", label: "Username", autocomplete: "username" },
    { name: "password", label: "Password or token", type: "password", secret: true },
  ],
  github: [
    { name: "repo", label: "Repository", placeholder: "owner/name, or a name" },
    { name: "branch", label: "Branch", placeholder: "the repository's default" },
    { name: "create", label: "Create the repository if it does not exist", type: "checkbox" },
    { name: "private", label: "Private", type: "checkbox", initial: true },
  ],
  netlify: [{ name: "site_name", label: "Site name (for a new site)", placeholder: "my-bakery" }],
};

function kib(bytes) {
  return bytes < 1024 ? `${bytes} bytes` : `${(bytes / 1024).toFixed(1)} KiB`;
}

function Dialog({ title, onClose, children }) {
  const ref = useRef(null);
  useEffect(() => {
    const dialog = ref.current;
    dialog.showModal();
    return () => dialog.open && dialog.close();
  }, []);
  return html`<dialog ref=${ref} class="dialog ship" aria-labelledby="ship-title" onClose=${onClose}>
    <div class="row"><h2 id="ship-title">${title}</h2><span class="spacer"></span>
      <button type="button" onClick=${() => ref.current.close()}>Close</button></div>
    ${children}
  </dialog>`;
}

function VersionPicker({ versions, value, onChange }) {
  return html`<label for="ship-version">Version</label>
    <select id="ship-version" value=${value} onChange=${(e) => onChange(e.target.value)}>
      ${versions.map(
        (s, i) => html`<option key=${s.version} value=${String(s.version)}>
          Version ${s.version}${i === 0 ? " (latest)" : ""}: ${s.summary || "no summary"}</option>`,
      )}
    </select>`;
}

function filenameOf(response, fallback) {
  const match = /filename="([^"]+)"/.exec(response.headers.get("content-disposition") || "");
  return match ? match[1] : fallback;
}

function Download({ projectId, versions }) {
  const [version, setVersion] = useState(versions.length ? String(versions[0].version) : "");
  const [format, setFormat] = useState("zip");
  const [built, setBuilt] = useState(false);
  const [progress, setProgress] = useState(null);
  const [done, setDone] = useState(null);
  const [error, setError] = useState(null);
  const submit = async (event) => {
    event.preventDefault();
    setError(null);
    setDone(null);
    setProgress(0);
    try {
      const params = new URLSearchParams({ format });
      if (version) params.set("version", version);
      if (built) params.set("built", "true");
      const response = await api("GET", `/api/projects/${projectId}/export?${params}`, {
        raw: true,
      });
      // Read the stream to show how much has arrived, then hand the file to the browser.
      const reader = response.body.getReader();
      const chunks = [];
      let received = 0;
      for (;;) {
        const { value, done: end } = await reader.read();
        if (end) break;
        chunks.push(value);
        received += value.length;
        setProgress(received);
      }
      const name = filenameOf(response, `project.${format}`);
      const url = URL.createObjectURL(new Blob(chunks, { type: response.headers.get("content-type") }));
      const link = document.createElement("a");
      link.href = url;
      link.download = name;
      link.click();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      setDone(`Downloaded ${name} (${kib(received)}).`);
    } catch (failure) {
      setError(failure);
    } finally {
      setProgress(null);
    }
  };
  if (!versions.length) return html`<p class="muted">No versions yet: nothing to download.</p>`;
  return html`<form class="stack" onSubmit=${submit}>
    <${VersionPicker} versions=${versions} value=${version} onChange=${setVersion} />
    <fieldset class="row wrap"><legend>Format</legend>
      ${["zip", "tar.gz"].map(
        (f) => html`<label key=${f} class="choice"><input type="radio" name="format" value=${f}
          checked=${format === f} onChange=${() => setFormat(f)} />${f}</label>`,
      )}
    </fieldset>
    <label class="choice"><input type="checkbox" checked=${built}
      onChange=${(e) => setBuilt(e.target.checked)} />The build output (dist/) of the latest
      version, for a project that builds</label>
    <${ErrorNote} error=${error} />
    ${progress !== null && html`<p role="status" class="muted">Downloading… ${kib(progress)}</p>`}
    ${done && html`<p role="status">${done}</p>`}
    <div class="row"><button type="submit" class="primary" disabled=${progress !== null}>
      Download</button></div>
  </form>`;
}

function Field({ field, value, stored, onChange }) {
  const id = `ship-opt-${field.name}`;
  if (field.type === "checkbox") {
    return html`<label class="choice"><input id=${id} type="checkbox" checked=${!!value}
      onChange=${(e) => onChange(e.target.checked)} />${field.label}</label>`;
  }
  const placeholder = field.secret && stored ? "stored; leave empty to keep it" : field.placeholder || field.hint || "";
  return html`<div><label for=${id}>${field.label}</label>
    <input id=${id} type=${field.type || "text"} value=${value ?? ""} placeholder=${placeholder}
      required=${!!field.required} autocomplete=${field.autocomplete || "off"} spellcheck="false"
      onInput=${(e) => onChange(e.target.value)} /></div>`;
}

function Publication({ item }) {
  const deploy = item.detail && item.detail.deploy_url;
  const commit = item.detail && item.detail.commit;
  return html`<li class=${`publication ${item.status}`}>
    <span class="badge">${item.status}</span> Version ${item.version} · ${item.publisher}
    ${item.url && html` · <a href=${item.url} target="_blank" rel="noopener noreferrer">${item.url}</a>`}
    ${deploy && html` · deploy <a href=${deploy} target="_blank" rel="noopener noreferrer">${deploy}</a>`}
    ${commit && html` · commit <code>${String(commit).slice(0, 12)}</code>`}
    ${item.error && html`<p class="error">${item.error}</p>`}
  </li>`;
}

// A provider the publisher needs is not connected: a personal access token connects it
// (stored encrypted, never shown again); a server with the provider's OAuth app set up
// also offers the OAuth flow.
function Connect({ provider, onConnected }) {
  const [token, setToken] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const label = PROVIDERS[provider];
  const save = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api("PUT", `/api/integrations/${provider}/token`, { body: { access_token: token } });
      setToken("");
      onConnected();
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  const oauth = async () => {
    setError(null);
    try {
      location.assign((await api("POST", `/api/integrations/${provider}/connect`)).authorize_url);
    } catch (failure) {
      setError(failure);
    }
  };
  return html`<form class="notice stack" onSubmit=${save} aria-labelledby="ship-connect">
    <p id="ship-connect">${label} is not connected yet.</p>
    <div><label for="ship-token">${label} personal access token</label>
      <input id="ship-token" type="password" required autocomplete="off" spellcheck="false"
        value=${token} onInput=${(e) => setToken(e.target.value)} /></div>
    <${ErrorNote} error=${error} />
    <div class="row wrap"><button type="submit" disabled=${busy}>Save the token</button>
      <button type="button" onClick=${oauth}>Connect ${label} instead</button></div>
  </form>`;
}

function Publish({ projectId, versions, kind }) {
  const [publishers, setPublishers] = useState(null);
  const [state, setState] = useState(null);
  const [publisher, setPublisher] = useState("");
  const [connected, setConnected] = useState(null); // providers with a stored token
  const [options, setOptions] = useState({});
  const [version, setVersion] = useState(versions.length ? String(versions[0].version) : "");
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const load = async () => {
    const [all, current, integrations] = await Promise.all([
      api("GET", "/api/publishers"),
      api("GET", `/api/projects/${projectId}/publish`),
      api("GET", "/api/integrations"),
    ]);
    setConnected(new Set(integrations.map((i) => i.provider)));
    const mine = all.filter((p) => (kind === "push") === PUSHERS.has(p.name));
    setPublishers(mine);
    setState(current);
    return { mine, current };
  };
  const choose = (name, current) => {
    setPublisher(name);
    const target = current.targets.find((t) => t.publisher === name);
    const initial = {};
    for (const field of FIELDS[name] || []) {
      if (field.initial !== undefined) initial[field.name] = field.initial;
    }
    setOptions({ ...initial, ...(target ? target.config : {}) });
  };
  useEffect(() => {
    load()
      .then(({ mine, current }) => mine.length && choose(mine[0].name, current))
      .catch(setError);
  }, [projectId]);
  const submit = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setResult(null);
    const sent = {};
    for (const field of FIELDS[publisher] || []) {
      const value = options[field.name];
      if (value === undefined || value === "" || value === null) continue;
      sent[field.name] = value;
    }
    try {
      const body = { options: sent };
      if (version) body.version = Number(version);
      setResult(await api("POST", `/api/projects/${projectId}/publish/${publisher}`, { body }));
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
      load().catch(() => {});
    }
  };
  if (!publishers) return html`<p role="status" class="muted">Loading…</p>`;
  if (!publishers.length) return html`<p class="muted">This server has nowhere to ${kind} to.</p>`;
  if (!versions.length) return html`<p class="muted">No versions yet: nothing to ${kind}.</p>`;
  const target = state && state.targets.find((t) => t.publisher === publisher);
  const history = state ? state.publications.filter((p) => p.publisher === publisher).slice(0, 5) : [];
  const verb = kind === "push" ? "Push" : "Publish";
  const missing = PROVIDERS[publisher] && connected && !connected.has(publisher);
  return html`${missing && html`<${Connect} provider=${publisher}
      onConnected=${() => load().catch(setError)} />`}
    <form class="stack" onSubmit=${submit}>
    <label for="ship-publisher">${kind === "push" ? "Remote" : "Host"}</label>
    <select id="ship-publisher" value=${publisher} onChange=${(e) => choose(e.target.value, state)}>
      ${publishers.map((p) => html`<option key=${p.name} value=${p.name}>${p.name}: ${p.description}</option>`)}
    </select>
    <${VersionPicker} versions=${versions} value=${version} onChange=${setVersion} />
    ${(FIELDS[publisher] || []).map(
      (field) => html`<${Field} key=${`${publisher}-${field.name}`} field=${field}
        value=${options[field.name]} stored=${target && target.has_credentials}
        onChange=${(value) => setOptions((old) => ({ ...old, [field.name]: value }))} />`,
    )}
    <${ErrorNote} error=${error} />
    ${busy && html`<p role="status" class="muted">${kind === "push" ? "Pushing" : "Publishing"}
      version ${version}…</p>`}
    ${result && html`<div role="status" class="notice">
      <p>${kind === "push" ? "Pushed" : "Published"} version ${result.version}:
        ${result.url && html` <a href=${result.url} target="_blank" rel="noopener noreferrer">${result.url}</a>`}</p>
      ${result.detail.deploy_url && html`<p>This deploy: <a href=${result.detail.deploy_url}
        target="_blank" rel="noopener noreferrer">${result.detail.deploy_url}</a></p>`}
      ${result.detail.commit && html`<p class="muted small">Commit <code>${result.detail.commit}</code>
        on ${result.detail.branch}</p>`}
    </div>`}
    <div class="row"><button type="submit" class="primary" disabled=${busy || missing}>
      ${verb}</button></div>
    ${history.length > 0 && html`<section aria-labelledby="ship-history"><h3 id="ship-history">
      Recent</h3><ul class="publications">${history.map((p) => html`<${Publication} key=${p.id} item=${p} />`)}</ul></section>`}
  </form>`;
}

const TITLES = { download: "Download", push: "Push to git", publish: "Publish" };

// The Download / Push / Publish buttons of the project screen, and the open dialog.
export function ShipMenu({ projectId, version }) {
  const [open, setOpen] = useState(null);
  const [versions, setVersions] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    if (!open) return;
    api("GET", `/api/projects/${projectId}/snapshots?limit=50`)
      .then((page) => setVersions(page.items), setError);
  }, [open, projectId, version]);
  const close = () => {
    setOpen(null);
    setVersions(null);
    setError(null);
  };
  return html`<div class="row ship-menu" role="group" aria-label="Ship">
    <button type="button" onClick=${() => setOpen("download")}>Download</button>
    <button type="button" onClick=${() => setOpen("push")}>Push</button>
    <button type="button" onClick=${() => setOpen("publish")}>Publish</button>
    ${open && html`<${Dialog} title=${TITLES[open]} onClose=${close}>
      <${ErrorNote} error=${error} />
      ${versions === null
        ? !error && html`<p role="status" class="muted">Loading…</p>`
        : open === "download"
          ? html`<${Download} projectId=${projectId} versions=${versions} />`
          : html`<${Publish} projectId=${projectId} versions=${versions} kind=${open} />`}
    </${Dialog}>`}
  </div>`;
}
