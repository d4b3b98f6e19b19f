// The studio's entry: session, routing (#/ and #/p/<id>), sign-in and projects screens.
// The project screen is a separate module loaded the first time a project is opened.
import { ApiError, api, onUnauthorized, setCsrfToken, when } from "./api.js";
import { html, render, useCallback, useEffect, useState } from "./lib.js";
import { Attachments, encodeImages, useAttachments } from "./attach.js";
import { ConfirmDialog, ErrorNote } from "./ui.js";

const pendingPrompts = new Map(); // project id -> {prompt, images} to send when it opens

function parseRoute() {
  const match = location.hash.match(/^#\/p\/([0-9a-f-]{36})$/);
  return match ? { screen: "project", id: match[1] } : { screen: "projects" };
}

function useRoute() {
  const [route, setRoute] = useState(parseRoute());
  useEffect(() => {
    const changed = () => setRoute(parseRoute());
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return route;
}

function SignIn({ onSignedIn, note }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event, withKey = true) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const body = withKey ? { api_key: key } : {};
      onSignedIn(await api("POST", "/api/sign-in", { body, quiet401: true }));
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  return html`<main id="main" class="signin">
    <h1>Sign in to builder studio</h1>
    ${note && html`<p class="muted" role="status">${note}</p>`}
    <form onSubmit=${submit} class="card stack">
      <label for="api-key">API key</label>
      <input id="api-key" name="api_key" type="password" autocomplete="off" spellcheck="false"
        required placeholder="bld_…" value=${key} onInput=${(e) => setKey(e.target.value)} />
      <p class="muted small">Create one with <code>builder keys create</code>. It is kept in an
        HttpOnly cookie, never readable by scripts.</p>
      <${ErrorNote} error=${error} />
      <div class="row">
        <button class="primary" type="submit" disabled=${busy}>Sign in</button>
        <button type="button" disabled=${busy} onClick=${(e) => submit(e, false)}>
          Continue without a key
        </button>
      </div>
    </form>
  </main>`;
}

function Header({ session, onSignOut }) {
  return html`<header class="top">
    <a class="skip" href="#main">Skip to content</a>
    <a class="brand" href="#/">builder studio</a>
    <span class="spacer"></span>
    <span class="muted user" aria-label="Signed in as">${session.user.name}</span>
    <button type="button" onClick=${onSignOut}>Sign out</button>
  </header>`;
}

function nameFrom(prompt) {
  const line = prompt.trim().split("\n")[0];
  return line.length > 60 ? `${line.slice(0, 57).trimEnd()}…` : line;
}

function NewProject() {
  const [prompt, setPrompt] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const attach = useAttachments();
  const submit = async (event) => {
    event.preventDefault();
    if (!prompt.trim()) return;
    setBusy(true);
    setError(null);
    try {
      const images = await encodeImages(attach.images);
      const project = await api("POST", "/api/projects", { body: { name: nameFrom(prompt) } });
      pendingPrompts.set(project.id, { prompt: prompt.trim(), images });
      location.hash = `#/p/${project.id}`;
    } catch (failure) {
      setError(failure);
      setBusy(false);
    }
  };
  const keys = (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) submit(event);
  };
  const improve = async () => {
    if (!prompt.trim()) return;
    setBusy(true);
    setError(null);
    try {
      setPrompt((await api("POST", "/api/improve-prompt", { body: { prompt } })).prompt);
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  return html`<form class="card stack" onSubmit=${submit} aria-labelledby="new-title"
    onDrop=${attach.drop} onDragOver=${attach.dragOver}>
    <h2 id="new-title">New project</h2>
    <label for="new-prompt">Describe the site you want</label>
    <textarea id="new-prompt" rows="3" required maxlength="20000" value=${prompt}
      placeholder="A one-page site for a bakery, with opening hours and a contact form"
      onInput=${(e) => setPrompt(e.target.value)} onKeyDown=${keys}
      onPaste=${attach.paste}></textarea>
    <${Attachments} id="new-images" images=${attach.images} refused=${attach.refused}
      onAdd=${attach.add} onRemove=${attach.remove} />
    <${ErrorNote} error=${error} />
    <div class="row">
      <button class="primary" type="submit" disabled=${busy}>Build it</button>
      <button type="button" disabled=${busy || !prompt.trim()} onClick=${improve}>
        Improve the prompt</button>
    </div>
  </form>`;
}

// The newest screenshot, as WebP at two widths chosen by the browser; decorative (the
// name beside it is the link), lazy, and sized before it loads so nothing shifts.
function Thumbnail({ project }) {
  const thumb = project.thumbnail;
  if (!thumb || !thumb.sizes.length) return html`<div class="thumb none" aria-hidden="true"></div>`;
  const url = (size) => `/api/projects/${project.id}/thumbnails/${size.name}`;
  const [small] = thumb.sizes;
  return html`<img class="thumb" alt="" loading="lazy" decoding="async" src=${url(small)}
    srcset=${thumb.sizes.map((size) => `${url(size)} ${size.width}w`).join(", ")}
    sizes="(min-width: 40rem) 20rem, 100vw" width=${small.width} height=${small.height} />`;
}

function ProjectCard({ project, onChanged, onDelete }) {
  const [error, setError] = useState(null);
  const star = async () => {
    try {
      const method = project.starred ? "DELETE" : "PUT";
      onChanged(await api(method, `/api/projects/${project.id}/star`));
    } catch (failure) {
      setError(failure);
    }
  };
  return html`<li class="card project">
    <${Thumbnail} project=${project} />
    <a class="title" href=${`#/p/${project.id}`}>${project.name}</a>
    <p class="muted small">Updated ${when(project.updated_at)}<br />
      Last opened ${when(project.last_opened_at)}</p>
    <${ErrorNote} error=${error} />
    <div class="row">
      <button type="button" aria-pressed=${project.starred ? "true" : "false"} onClick=${star}
        aria-label=${`Star ${project.name}`}>${project.starred ? "★ Starred" : "☆ Star"}</button>
      <button type="button" class="danger" onClick=${() => onDelete(project)}
        aria-label=${`Delete ${project.name}`}>Delete</button>
    </div>
  </li>`;
}

function Projects() {
  const [items, setItems] = useState([]);
  const [cursor, setCursor] = useState(null);
  const [query, setQuery] = useState("");
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState(null);
  const [deleting, setDeleting] = useState(null);
  const load = useCallback(async (q, after) => {
    setLoading(true);
    setError(null);
    try {
      const params = new URLSearchParams({ limit: "24" });
      if (q) params.set("q", q);
      if (after) params.set("cursor", after);
      const page = await api("GET", `/api/projects?${params}`);
      setItems((old) => (after ? [...old, ...page.items] : page.items));
      setCursor(page.next_cursor);
    } catch (failure) {
      setError(failure);
    } finally {
      setLoading(false);
    }
  }, []);
  useEffect(() => {
    const timer = setTimeout(() => load(query.trim(), null), query ? 250 : 0);
    return () => clearTimeout(timer);
  }, [query]);
  const remove = async () => {
    const project = deleting;
    setDeleting(null);
    try {
      await api("DELETE", `/api/projects/${project.id}`);
      setItems((old) => old.filter((p) => p.id !== project.id));
    } catch (failure) {
      setError(failure);
    }
  };
  const changed = (project) => setItems((old) => old.map((p) => (p.id === project.id ? project : p)));
  return html`<main id="main" class="projects">
    <h1>Projects</h1>
    <${NewProject} />
    <section aria-labelledby="list-title" class="stack">
      <div class="row wrap">
        <h2 id="list-title">Your projects</h2>
        <span class="spacer"></span>
        <label class="visually-hidden" for="search">Search projects</label>
        <input id="search" type="search" placeholder="Search projects" value=${query}
          onInput=${(e) => setQuery(e.target.value)} />
      </div>
      <${ErrorNote} error=${error} />
      ${!loading && items.length === 0 &&
      html`<p class="muted" role="status">
        ${query ? "No project matches this search." : "No projects yet: describe one above."}
      </p>`}
      <ul class="grid" aria-busy=${loading ? "true" : "false"}>
        ${items.map(
          (p) => html`<${ProjectCard} key=${p.id} project=${p} onChanged=${changed}
            onDelete=${setDeleting} />`,
        )}
      </ul>
      ${cursor && html`<div class="row"><button type="button" disabled=${loading}
        onClick=${() => load(query.trim(), cursor)}>Load more</button></div>`}
    </section>
    ${deleting && html`<${ConfirmDialog} title=${`Delete “${deleting.name}”?`} danger
      body="Its conversation, files and every version are deleted. This cannot be undone."
      confirm="Delete project" onConfirm=${remove} onClose=${() => setDeleting(null)} />`}
  </main>`;
}

function ProjectRoute({ id, session }) {
  const [screen, setScreen] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    import("./project.js").then((module) => setScreen(() => module.ProjectScreen), setError);
  }, []);
  if (error) return html`<main id="main"><${ErrorNote} error=${error} /></main>`;
  if (!screen) return html`<main id="main"><p role="status">Loading…</p></main>`;
  const prompt = pendingPrompts.get(id);
  pendingPrompts.delete(id);
  return html`<${screen} key=${id} id=${id} session=${session} initialPrompt=${prompt} />`;
}

function App() {
  const [session, setSession] = useState(undefined);
  const [note, setNote] = useState(null);
  const route = useRoute();
  const signedIn = (info) => {
    setCsrfToken(info.csrf_token);
    setSession(info);
  };
  useEffect(() => {
    onUnauthorized(() => {
      setCsrfToken(null);
      setNote("Your session has ended. Sign in again.");
      setSession(null);
    });
    (async () => {
      try {
        const info = await api("GET", "/api/session", { quiet401: true });
        if (info.csrf_token) return signedIn(info);
      } catch (failure) {
        if (!(failure instanceof ApiError) || failure.status !== 401) throw failure;
      }
      try {
        // Anonymous access (development): straight in.
        signedIn(await api("POST", "/api/sign-in", { body: {}, quiet401: true }));
      } catch {
        setSession(null);
      }
    })();
  }, []);
  const signOut = async () => {
    try {
      await api("DELETE", "/api/session", { quiet401: true });
    } finally {
      setCsrfToken(null);
      setNote("You have signed out.");
      setSession(null);
    }
  };
  useEffect(() => {
    document.title = session ? "builder studio" : "Sign in · builder studio";
  }, [session]);
  if (session === undefined) return html`<p class="loading" role="status">Loading…</p>`;
  if (session === null) return html`<${SignIn} onSignedIn=${signedIn} note=${note} />`;
  return html`<${Header} session=${session} onSignOut=${signOut} />
    ${route.screen === "project"
      ? html`<${ProjectRoute} key=${route.id} id=${route.id} session=${session} />`
      : html`<${Projects} />`}`;
}

render(html`<${App} />`, document.getElementById("app"));
