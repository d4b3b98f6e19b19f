#!/usr/bin/env python3
"""Vendor the studio's libraries from their npm packages, at pinned versions.

Run from the repository root: ``python .ci/vendor-studio.py``. It fetches each package
with ``npm pack`` (integrity-checked by npm), copies its ES module build and licence
into ``builder/http/studio/static/vendor/``, points the hooks module's bare
``"preact"`` import at the vendored file (browsers need a path; an import map would be
inline script, which the studio's CSP forbids), joins Prism's core and the grammars the
code viewer uses into one ES module (manual mode: it never highlights the page by
itself), drops source-map comments, and records every file's SHA-256 in
``VENDOR.json``. ``--check`` only verifies the vendored files against ``VENDOR.json``
(offline; the test suite does the same).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "builder/http/studio/static/vendor"
PACKAGES = {
    "preact@10.29.8": {
        "package/dist/preact.module.js": "preact.module.js",
        "package/hooks/dist/hooks.module.js": "hooks.module.js",
        "package/LICENSE": "LICENSE.preact",
    },
    "htm@3.1.1": {
        "package/dist/htm.module.js": "htm.module.js",
        "package/LICENSE": "LICENSE.htm",
    },
    "prismjs@1.30.0": {
        tuple(
            f"package/components/prism-{name}.min.js"
            for name in (
                "core",
                "markup",
                "css",
                "clike",
                "javascript",
                "json",
                "markdown",
                "python",
                "typescript",
                "jsx",
                "tsx",
                "yaml",
                "bash",
            )
        ): "prism.module.js",
        "package/LICENSE": "LICENSE.prism",
    },
}
# Prism is a classic script: as a module its ``Prism`` stays module-scoped, so it is
# exported, and ``manual`` is set where its core looks for it before it loads.
_PRISM_HEAD = "globalThis.Prism = { manual: true, disableWorkerMessageHandler: true };\n"
_PRISM_TAIL = "delete globalThis.Prism;\nexport default Prism;\n"


def _transform(name: str, text: str) -> str:
    if name.endswith(".js"):
        text = text.replace('from"preact"', 'from"./preact.module.js"')
        lines = [line for line in text.splitlines() if not line.startswith("//# sourceMappingURL")]
        text = "\n".join(lines) + "\n"
    return text


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check() -> int:
    manifest = json.loads((VENDOR / "VENDOR.json").read_text())
    bad = [n for n, f in manifest["files"].items() if _sha(VENDOR / n) != f["sha256"]]
    for name in bad:
        print(f"{name} differs from VENDOR.json", file=sys.stderr)
    return 1 if bad else 0


def vendor() -> int:
    files: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for spec, wanted in PACKAGES.items():
            out = subprocess.run(
                ["npm", "pack", spec, "--json", "--pack-destination", tmp],
                check=True,
                capture_output=True,
                text=True,
            )
            (info,) = json.loads(out.stdout)
            with tarfile.open(Path(tmp) / info["filename"]) as archive:
                for members, name in wanted.items():
                    parts = (members,) if isinstance(members, str) else members
                    texts = []
                    for member in parts:
                        extracted = archive.extractfile(member)
                        assert extracted is not None, member
                        texts.append(_transform(name, extracted.read().decode("utf-8")))
                    text = "".join(texts)
                    if name == "prism.module.js":
                        text = _PRISM_HEAD + text + _PRISM_TAIL
                    (VENDOR / name).write_text(text)
                    files[name] = {
                        "package": spec,
                        "from": " + ".join(m.removeprefix("package/") for m in parts),
                        "npm_integrity": info["integrity"],
                        "sha256": _sha(VENDOR / name),
                    }
    manifest = {"generated_by": ".ci/vendor-studio.py", "files": files}
    (VENDOR / "VENDOR.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(check() if "--check" in sys.argv[1:] else vendor())
