// Small pieces every screen uses.
import { html, useEffect, useRef } from "./lib.js";

export function ConfirmDialog({ title, body, confirm, danger, onConfirm, onClose }) {
  const ref = useRef(null);
  useEffect(() => {
    const dialog = ref.current;
    dialog.showModal();
    return () => dialog.open && dialog.close();
  }, []);
  return html`<dialog ref=${ref} class="dialog" aria-labelledby="dialog-title" onClose=${onClose}>
    <h2 id="dialog-title">${title}</h2>
    <p>${body}</p>
    <div class="row end">
      <button type="button" onClick=${() => ref.current.close()}>Cancel</button>
      <button type="button" class=${danger ? "danger" : "primary"} onClick=${onConfirm}>
        ${confirm}
      </button>
    </div>
  </dialog>`;
}

export function ErrorNote({ error }) {
  if (!error) return null;
  return html`<p class="error" role="alert">${error.message || String(error)}</p>`;
}
