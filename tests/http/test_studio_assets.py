"""The studio's files as shipped: vendored libraries unchanged, every import resolvable,
and no way for markup to reach the page except as text."""

from __future__ import annotations

import hashlib
import json
import re

from builder.http.studio.routes import STATIC_DIR

VENDOR = STATIC_DIR / "vendor"
_IMPORT = re.compile(r"""(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)["'](\.{1,2}/[^"']+)["']""")


def test_the_vendored_libraries_are_the_recorded_npm_files_with_their_licences() -> None:
    manifest = json.loads((VENDOR / "VENDOR.json").read_text())
    files = manifest["files"]
    assert {"preact.module.js", "hooks.module.js", "htm.module.js"} <= set(files)
    assert {"LICENSE.preact", "LICENSE.htm"} <= set(files)
    for name, entry in files.items():
        digest = hashlib.sha256((VENDOR / name).read_bytes()).hexdigest()
        assert digest == entry["sha256"], f"{name} differs from {entry['package']}"
    shipped = {p.name for p in VENDOR.iterdir()} - {"VENDOR.json"}
    assert shipped == set(files), "every vendored file is recorded"


def test_every_relative_import_of_every_module_names_a_shipped_file() -> None:
    modules = sorted(STATIC_DIR.rglob("*.js"))
    assert len(modules) >= 8
    for module in modules:
        for target in _IMPORT.findall(module.read_text()):
            assert (module.parent / target).resolve().is_file(), f"{module.name}: {target}"
        # Bare specifiers ("preact") would need an import map, i.e. inline script.
        assert not re.search(r"""\bfrom\s*["'][a-z@]""", module.read_text()), module.name


def test_the_studios_own_code_never_writes_markup() -> None:
    for module in STATIC_DIR.glob("*.js"):
        text = module.read_text()
        for sink in ("innerHTML", "outerHTML", "dangerouslySetInnerHTML", "insertAdjacentHTML"):
            assert sink not in text, f"{module.name} uses {sink}"
        assert "document.write" not in text and "eval(" not in text, module.name
    page = (STATIC_DIR / "index.html").read_text()
    assert re.findall(r"<script\b[^>]*>", page) == ['<script type="module" src="/studio/app.js">']
    assert " style=" not in page and "<style" not in page
