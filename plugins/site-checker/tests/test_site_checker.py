"""check_site, found through its installed ``builder`` entry point and run on a sandbox."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from builder import LockManager, ToolContext
from builder.cli import app
from builder.plugins import PluginInfo, get_tool_registry, loaded_plugins, reset_plugins
from builder.sandbox.local import LocalSandbox
from builder.settings import Settings, get_settings

SITE = {
    "site/index.html": """<!doctype html>
<html><head><title>Home</title><link rel="stylesheet" href="css/site.css"></head>
<body>
<nav><a href="about.html">About</a> <a href="/blog/">Blog</a> <a href="#main">Skip</a>
<a href="https://example.com/">Out</a> <a href="mailto:a@b.c">Mail</a></nav>
<main id="main">
<img src="img/logo.png" alt="Logo"><img src="img/missing.png" alt="">
<img src="img/logo.png">
<a href="contact.html">Contact</a> <a href="about.html#team">Team</a>
</main>
</body></html>
""",
    "site/about.html": """<html><head><title>About</title></head>
<body><div id="team"><em>Us</div>
<span id="team">dup</span>
</body></html>
""",
    "site/blog/index.html": (
        "<html><head></head><body><a href='../index.html#nope'>x</a></body></html>\n"
    ),
    "site/css/site.css": "body {}\n",
    "site/img/logo.png": "png",
}


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    reset_plugins()
    yield Settings(data_dir=tmp_path, load_plugins=None)
    reset_plugins()


def test_found_through_its_entry_point(settings: Settings) -> None:
    registry = get_tool_registry(settings)
    assert registry.get("check_site").plugin == "site_checker"
    info = {p.name: p for p in loaded_plugins()}["site_checker"]
    assert info == PluginInfo("site_checker", "builder-site-checker", "0.1.0")


def test_listed_by_the_cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUILDER_LOAD_PLUGINS", "site_checker")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["tools", "list", "--json"])
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    plugins = {item["name"]: item["plugin"] for item in json.loads(result.output)}
    assert plugins["check_site"] == "site_checker"
    assert plugins["edit_file"] == "builtin"


@pytest.mark.parametrize(
    ("allow", "present"), [("", False), ("other", False), ("site_checker", True)]
)
def test_the_allow_list_decides(settings: Settings, allow: str, present: bool) -> None:
    registry = get_tool_registry(settings.model_copy(update={"load_plugins": allow}))
    assert ("check_site" in registry) is present
    assert "edit_file" in registry


async def test_report(settings: Settings) -> None:
    sandbox = LocalSandbox("site-check", settings=settings)
    for path, content in SITE.items():
        await sandbox.write_file(path, content.encode())
    ctx = ToolContext(
        sandbox=sandbox,
        project_id="site-check",
        settings=settings,
        locks=LockManager(None, timeout=5),
    )
    tool = get_tool_registry(settings).as_langchain_tool("check_site", ctx)
    assert await tool.ainvoke({"path": "site"}) == (
        "Checked 3 pages under site: 7 problems\n"
        "about.html:2: malformed HTML: <em> is not closed before </div> at line 2\n"
        'about.html:3: duplicate id: id="team" is also used at line 2\n'
        "blog/index.html: missing title: the page has no <title>\n"
        "blog/index.html:1: broken link: ../index.html#nope: no element has id 'nope'\n"
        "index.html:7: broken link: img/missing.png does not exist\n"
        "index.html:8: missing alt text: <img> img/logo.png has no alt\n"
        "index.html:9: broken link: contact.html does not exist"
    )
    assert await tool.ainvoke({"path": "site/css"}) == "No HTML pages under site/css."
    assert await tool.ainvoke({"path": "nowhere"}) == "nowhere does not exist."
