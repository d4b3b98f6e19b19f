"""The README's test command is the one a new user pastes, and the one CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _test_command() -> str:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- ci-test-command -->", 1)[1]
    match = re.search(r"```sh\n(.*?)\n```", block, re.DOTALL)
    assert match is not None, "the README lost its test command"
    return match.group(1).strip()


def test_the_test_command_installs_what_the_tests_need_then_tests() -> None:
    command = _test_command()
    assert "\n" not in command, "one command, pasted as one line"
    install, _, test = command.partition(" && ")
    assert test == "python -m pytest"
    assert install.startswith("pip install -e '.[")
    extras = set(re.search(r"\.\[([^\]]+)\]", install).group(1).split(","))  # type: ignore[union-attr]
    assert {"test", "dev"} <= extras
    for plugin in sorted((ROOT / "plugins").glob("*/pyproject.toml")):
        assert f"-e plugins/{plugin.parent.name}" in install


def test_ci_runs_exactly_that_command_and_installs_nothing_else() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "ci-test-command" in ci and 'bash -c "$TEST_COMMAND"' in ci
    installs = [line for line in ci.splitlines() if "pip install" in line]
    assert installs == ["python -m pip install -q --upgrade pip"]
