// Images attached to a message: pasted, dropped or picked, checked here before they are
// sent (type, count, size), previewed from object URLs, removable. They are sent as
// {media_type, data: base64} in the chat request's "images".
import { html, useEffect, useRef, useState } from "./lib.js";

export const IMAGE_TYPES = ["image/png", "image/jpeg", "image/webp", "image/gif"];
export const MAX_IMAGES = 4;
export const MAX_IMAGE_BYTES = 5 * 1024 * 1024;
// All of a message's images, base64-encoded, stay under the server's default 10 MiB body.
export const MAX_TOTAL_BYTES = 7 * 1024 * 1024;

const MB = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
let nextId = 1;

// Add files to the attached images; answers the new list and what was refused, in words.
export function addImages(current, files) {
  const images = [...current];
  const refused = [];
  for (const file of files) {
    const name = file.name || "pasted image";
    if (!IMAGE_TYPES.includes(file.type)) {
      refused.push(`${name}: not a PNG, JPEG, WebP or GIF image`);
    } else if (images.length >= MAX_IMAGES) {
      refused.push(`${name}: at most ${MAX_IMAGES} images per message`);
    } else if (file.size > MAX_IMAGE_BYTES) {
      refused.push(`${name}: ${MB(file.size)}, larger than ${MB(MAX_IMAGE_BYTES)}`);
    } else if (images.reduce((sum, i) => sum + i.file.size, 0) + file.size > MAX_TOTAL_BYTES) {
      refused.push(`${name}: the images together would pass ${MB(MAX_TOTAL_BYTES)}`);
    } else {
      images.push({ id: nextId++, file, name, url: URL.createObjectURL(file) });
    }
  }
  return { images, refused };
}

export function releaseImages(images) {
  for (const image of images) URL.revokeObjectURL(image.url);
}

function base64(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

// The request's "images": [{media_type, data}] (undefined when there are none).
export async function encodeImages(images) {
  if (!images.length) return undefined;
  return Promise.all(
    images.map(async (image) => ({
      media_type: image.file.type,
      data: base64(await image.file.arrayBuffer()),
    })),
  );
}

// Files pasted into or dropped on an element.
export function filesOf(event) {
  const transfer = event.clipboardData || event.dataTransfer;
  return transfer ? [...transfer.files] : [];
}

// The "Attach images" button (it opens a hidden file input), the previews with
// their remove buttons, and what was refused.
export function Attachments({ id, images, refused, onAdd, onRemove }) {
  const input = useRef(null);
  return html`<div class="attachments">
    <div class="row wrap">
      <input ref=${input} id=${id} class="visually-hidden" type="file" multiple tabindex="-1"
        aria-label="Image files to attach" accept=${IMAGE_TYPES.join(",")}
        onChange=${(e) => { onAdd([...e.target.files]); e.target.value = ""; }} />
      <button type="button" onClick=${() => input.current.click()}>Attach images</button>
      <span class="muted small">or paste or drop them (up to ${MAX_IMAGES}, ${MB(MAX_IMAGE_BYTES)} each)</span>
    </div>
    ${refused.length > 0 && html`<div class="error small" role="alert"><ul>
      ${refused.map((reason, index) => html`<li key=${index}>${reason}</li>`)}</ul></div>`}
    ${images.length > 0 && html`<ul class="thumbs" aria-label="Attached images">
      ${images.map(
        (image) => html`<li key=${image.id}>
          <img src=${image.url} alt=${image.name} width="64" height="64" />
          <button type="button" class="remove" aria-label=${`Remove ${image.name}`}
            onClick=${() => onRemove(image)}>×</button>
        </li>`,
      )}
    </ul>`}
  </div>`;
}

// State for a box with attachments: the images, what was refused, and the handlers.
export function useAttachments() {
  const [images, setImages] = useState([]);
  const [refused, setRefused] = useState([]);
  const latest = useRef(images);
  latest.current = images;
  useEffect(() => () => releaseImages(latest.current), []);
  const add = (files) => {
    if (!files.length) return;
    const result = addImages(latest.current, files);
    latest.current = result.images;
    setImages(result.images);
    setRefused(result.refused);
  };
  const remove = (image) => {
    releaseImages([image]);
    latest.current = latest.current.filter((i) => i.id !== image.id);
    setImages(latest.current);
    setRefused([]);
  };
  const clear = () => {
    releaseImages(latest.current);
    latest.current = [];
    setImages([]);
    setRefused([]);
  };
  const paste = (event) => {
    const files = filesOf(event);
    if (files.length) {
      event.preventDefault();
      add(files);
    }
  };
  const drop = (event) => {
    const files = filesOf(event);
    if (files.length) {
      event.preventDefault();
      add(files);
    }
  };
  const dragOver = (event) => {
    if (event.dataTransfer && [...event.dataTransfer.types].includes("Files")) event.preventDefault();
  };
  return { images, refused, add, remove, clear, paste, drop, dragOver };
}
