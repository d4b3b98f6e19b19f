// The studio's one UI library: Preact with its hooks, and htm for markup in plain
// JavaScript (tagged templates, no build step). Vendored under ./vendor (see VENDOR.json).
// Preact renders every interpolated value as text; nothing here parses a string as HTML.
import { h, render } from "./vendor/preact.module.js";
import htm from "./vendor/htm.module.js";

export { render };
export {
  useCallback,
  useEffect,
  useMemo,
  useRef,
  useState,
} from "./vendor/hooks.module.js";
export const html = htm.bind(h);
