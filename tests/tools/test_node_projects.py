"""A real Vite + React + TypeScript project with real npm: install from the lock file,
build, a type error reported with its file and line, a broken package.json."""

from __future__ import annotations

import asyncio
import shutil
import urllib.request

import pytest

from builder.errors import InvalidInput
from builder.plugins import get_starter_registry
from builder.sandbox.local import LocalSandbox
from builder.starters import starter_files
from builder.tools import build, devserver, shell
from builder.tools.build import parse_errors
from builder.tools.context import ToolContext

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("npm") is None, reason="needs Node.js and npm"),
]


async def _start(ctx: ToolContext, sandbox: LocalSandbox) -> None:
    for path, data in starter_files(get_starter_registry().get("vite-react-ts")).items():
        await sandbox.write_file(path, data)


async def test_a_starter_installs_builds_and_reports_type_errors(
    ctx: ToolContext, sandbox: LocalSandbox
) -> None:
    ctx.settings = ctx.settings.model_copy(update={"timeout_install": 600})
    await _start(ctx, sandbox)
    with pytest.raises(InvalidInput, match="the dependencies are not installed"):
        await build.check_build(ctx=ctx)
    installed = await shell.install_packages(ctx=ctx)
    assert installed.startswith("Installed with npm:"), installed
    assert "added" in installed
    assert await sandbox.stat("node_modules/vite/package.json") is not None

    assert await build.check_build(ctx=ctx) == "The build passes (npm run build)."
    assert await sandbox.stat("dist/index.html") is not None

    # A second project of the same starter gets the first one's installed tree, and it builds.
    second = LocalSandbox("project-2", settings=ctx.settings)
    try:
        ctx2 = ToolContext(
            sandbox=second, project_id="project-2", settings=ctx.settings, locks=ctx.locks
        )
        await _start(ctx2, second)
        reused = await shell.install_packages(ctx=ctx2)
        assert "packages from the host's cache of installed trees" in reused, reused
        assert await build.check_build(ctx=ctx2) == "The build passes (npm run build)."
    finally:
        await second.close()

    app = (await sandbox.read_file("src/App.tsx")).decode()
    broken = app.replace(
        "export default function App() {",
        'export default function App() {\n  const n: number = "seven";\n  console.log(n);',
    )
    await sandbox.write_file("src/App.tsx", broken.encode())
    report = await build.check_build(ctx=ctx)
    assert report.startswith("The build fails: `npm run build` reported 1 error:"), report
    assert "- src/App.tsx:2:9: TS2322:" in report
    assert "not assignable to type 'number'" in report


async def test_install_and_build_errors_are_short_and_name_the_problem(
    ctx: ToolContext, sandbox: LocalSandbox
) -> None:
    await sandbox.write_file("package.json", b'{"name": "site", "dependencies": {')
    with pytest.raises(InvalidInput, match=r"package\.json is not valid JSON"):
        await build.check_build(ctx=ctx)
    report = await shell.install_packages(ctx=ctx)
    assert report.startswith("`npm install --no-audit --no-fund` failed"), report
    assert "JSON" in report and len(report.splitlines()) <= 9

    await sandbox.write_file("package.json", b'{"name": "site", "version": "0.0.0"}')
    missing = await shell.install_packages(["left-pad@99.99.99"], ctx=ctx)
    assert "failed" in missing and "left-pad" in missing and len(missing) < 1500


def test_errors_are_parsed_from_tsc_astro_and_vite_output() -> None:
    output = "\n".join(
        [
            "src/App.tsx(3,7): error TS2322: Type 'string' is not assignable to type 'number'.",
            "src/pages/index.astro:4:9 - error ts(2304): Cannot find name 'foo'.",
            "error during build:",
            "[vite:esbuild] Transform failed with 1 error:",
            "file: /workspace/src/main.tsx:5:2",
        ]
    )
    assert [str(e) for e in parse_errors(output)] == [
        "src/App.tsx:3:7: TS2322: Type 'string' is not assignable to type 'number'.",
        "src/pages/index.astro:4:9: ts(2304): Cannot find name 'foo'.",
        "src/main.tsx:5:2: [vite:esbuild] Transform failed with 1 error:",
    ]


async def test_the_astro_starter_installs_builds_and_serves(
    ctx: ToolContext, sandbox: LocalSandbox
) -> None:
    ctx.settings = ctx.settings.model_copy(
        update={"timeout_install": 600, "timeout_dev_server": 120}
    )
    for path, data in starter_files(get_starter_registry().get("astro")).items():
        await sandbox.write_file(path, data)
    installed = await shell.install_packages(ctx=ctx)
    assert installed.startswith("Installed with npm:"), installed
    assert await build.check_build(ctx=ctx) == "The build passes (npm run build)."
    assert await sandbox.stat("dist/index.html") is not None

    started = await devserver.start_dev_server(ctx=ctx)
    assert started.startswith("Dev server running: npm run dev -- --port "), started
    status = ctx.effects.dev_server
    assert status is not None and status.running and status.port is not None
    page = await asyncio.to_thread(_fetch, f"http://127.0.0.1:{status.port}/")
    assert ">My site</h1>" in page and "<title>My site</title>" in page

    index = (await sandbox.read_file("src/pages/index.astro")).decode()
    await sandbox.write_file(
        "src/pages/index.astro",
        index.replace("---\n<Base", 'const count: number = "three";\n---\n<Base').encode(),
    )
    report = await build.check_build(ctx=ctx)
    assert report.startswith("The build fails: `npm run build` reported 1 error:"), report
    assert "- src/pages/index.astro:3:7: ts(2322): Type 'string' is not assignable" in report


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (a local test URL)
        return str(response.read().decode())
