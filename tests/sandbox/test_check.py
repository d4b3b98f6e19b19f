"""``builder sandbox check``: the escape probes against the configured backend, as a
user runs them, and a non-zero exit when the host gives less than the settings ask."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from builder.sandbox.local.confine import bwrap_status
from tests.support.cli import run_builder, user_env

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bwrap_status()[0] is None, reason="confinement unavailable"),
]

ISOLATION = [
    "read another project's workspace",
    "read the data directory",
    "read the service's home",
    "write outside the workspace",
    "see the host's processes",
    "a process outlives its command",
    "inherit the service's environment",
    "read another process's environment",
    "connect to a port on the host's loopback",
]


def _rows(output: str) -> dict[str, list[str]]:
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        if len(cells) == 5:
            rows[cells[1]] = cells
    return rows


def _env(tmp_path: Path, **values: str) -> dict[str, str]:
    # A root service's sandbox user must pass through the data directory's parents
    # (pytest's temporary directories are 0700).
    for directory in (tmp_path.parent, tmp_path):
        directory.chmod(directory.stat().st_mode | 0o001)
    # Fewer processes for the process-limit probe keep the check quick.
    return user_env(
        BUILDER_DATA_DIR=str(tmp_path / "data"), BUILDER_SANDBOX_MAX_PROCESSES="64", **values
    )


def test_the_default_backend_blocks_every_probe(tmp_path: Path) -> None:
    done = run_builder("sandbox", "check", env=_env(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    as_user = ", as uid 64000 on the host" if os.geteuid() == 0 else ""
    assert f"confined by bubblewrap{as_user}, network isolated" in done.stdout
    rows = _rows(done.stdout)
    for probe in [*ISOLATION, "start more processes than the limit"]:
        assert rows[probe][2].startswith("blocked"), rows[probe]
    assert rows["connect to PostgreSQL on 127.0.0.1:5432"][2] == "blocked"
    assert rows["dev server reachable from the host"][2] == "open"
    assert all(row[4] == "ok" for row in rows.values())
    assert not list((tmp_path / "data" / "workspaces").iterdir())


def test_a_host_without_bwrap_is_weaker_than_configured(tmp_path: Path) -> None:
    """The twin: the same probes get through when bubblewrap is missing, and the
    check fails instead of printing a reassuring table."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in Path("/usr/bin").iterdir():
        if tool.name != "bwrap":
            (bin_dir / tool.name).symlink_to(tool)
    path = f"{bin_dir}:{Path(sys.base_prefix) / 'bin'}"
    done = run_builder("sandbox", "check", env=_env(tmp_path, PATH=path), cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "backend local: unconfined" in done.stdout
    rows = _rows(done.stdout)
    for probe in ("read another project's workspace", "read the data directory"):
        assert rows[probe][2] == "open" and rows[probe][4] == "WEAKER"
    assert "probe(s) got through that the configured sandbox should block" in done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox user differs only for a root service")
def test_config_check_warns_when_the_sandbox_user_cannot_reach_the_data_directory(
    tmp_path: Path,
) -> None:
    for directory in (tmp_path.parent, tmp_path):
        directory.chmod(directory.stat().st_mode | 0o001)
    hidden = tmp_path / "hidden"
    hidden.mkdir(mode=0o700)
    env = user_env(BUILDER_DATA_DIR=str(hidden / "data"), BUILDER_MODEL="scripted:demo")
    done = run_builder("config", "check", env=env, cwd=tmp_path)
    assert (
        f"BUILDER_SANDBOX_UID 64000 cannot pass through {hidden}: confined commands run as "
        "root outside the sandbox" in done.stdout + done.stderr
    )
    hidden.chmod(0o711)  # the twin: passable, no warning
    done = run_builder("config", "check", env=env, cwd=tmp_path)
    assert "cannot pass through" not in done.stdout + done.stderr
