// The API client: same origin, the session cookie, and the CSRF token on every
// state-changing request. Errors become ApiError with the API's code and message.

let csrfToken = null;
let unauthorized = () => {};

export function setCsrfToken(token) {
  csrfToken = token;
}

export function onUnauthorized(callback) {
  unauthorized = callback;
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function errorOf(response) {
  let code = `http_${response.status}`;
  let message = response.statusText || "request failed";
  try {
    const body = await response.json();
    code = body.error.code;
    message = body.error.message;
  } catch {
    // not the API's error shape: keep the status line
  }
  return new ApiError(response.status, code, message);
}

// fetch() an API path. Returns the Response when `raw`, else the parsed JSON (null for 204).
export async function api(method, path, { body, signal, raw = false, quiet401 = false } = {}) {
  const headers = { accept: raw ? "*/*" : "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && method !== "HEAD" && csrfToken) headers["x-csrf-token"] = csrfToken;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    signal,
  });
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401 && !quiet401) unauthorized(error);
    throw error;
  }
  if (raw) return response;
  return response.status === 204 ? null : response.json();
}

// Server-sent events of a streamed response: yields {event, id, data} with data parsed.
export async function* events(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    for (;;) {
      const end = buffer.search(/\r?\n\r?\n/);
      if (end < 0) break;
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
      let event = "message";
      let id = null;
      const data = [];
      for (const line of block.split(/\r?\n/)) {
        if (line === "" || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "event") event = text;
        else if (field === "data") data.push(text);
        else if (field === "id") id = text;
      }
      if (data.length) yield { event, id, data: JSON.parse(data.join("\n")) };
    }
  }
}

export function when(iso) {
  if (!iso) return "never";
  const date = new Date(iso);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}
