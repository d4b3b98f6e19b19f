"""A Python project's packages with real pip from PyPI, in the confined sandbox: from
requirements.txt into the project's own .venv, added packages pinned, and the errors a
model can act on."""

from __future__ import annotations

import pytest

from builder.errors import InvalidInput
from builder.sandbox.local import LocalSandbox
from builder.tools import shell
from builder.tools.context import ToolContext

pytestmark = pytest.mark.slow


async def test_a_python_project_installs_into_its_own_venv(
    ctx: ToolContext, sandbox: LocalSandbox
) -> None:
    assert sandbox.confinement is not None  # pip runs confined, reaching only the index
    await sandbox.write_file("requirements.txt", b"six==1.16.0\n")
    await sandbox.write_file("app.py", b"import six\nprint(six.__version__)\n")
    report = await shell.install_packages(ctx=ctx)
    assert report.startswith("Installed with pip into .venv: added 1 package: six 1.16.0"), report
    ran = await shell.run_command(".venv/bin/python app.py", ctx=ctx)
    assert "1.16.0" in ran, ran
    # The environment is installed, not written: never a project file, like node_modules.
    assert sorted(f.path for f in await sandbox.list_files()) == ["app.py", "requirements.txt"]

    added = await shell.install_packages(["idna"], ctx=ctx)
    assert added.startswith("Installed with pip into .venv: added 1 package: idna "), added
    pinned = (await sandbox.read_file("requirements.txt")).decode().splitlines()
    assert pinned[0] == "six==1.16.0" and pinned[1].startswith("idna==") and len(pinned) == 2
    again = await shell.install_packages(ctx=ctx)
    assert again.startswith("Installed with pip into .venv: up to date"), again


async def test_python_install_errors_name_the_problem(
    ctx: ToolContext, sandbox: LocalSandbox
) -> None:
    await sandbox.write_file("requirements.txt", b"")
    missing = await shell.install_packages(["no-such-package-builder-test-0x7f"], ctx=ctx)
    assert "failed" in missing and len(missing.splitlines()) <= 9, missing
    assert "no-such-package-builder-test-0x7f is not in the package index" in missing, missing
    with pytest.raises(InvalidInput, match="not valid Python requirements"):
        await shell.install_packages(["https://example.com/evil.whl"], ctx=ctx)
    with pytest.raises(InvalidInput, match="not valid Python requirements"):
        await shell.install_packages(["six; rm -rf /"], ctx=ctx)


async def test_a_project_with_nothing_to_install_from_says_so(ctx: ToolContext) -> None:
    with pytest.raises(InvalidInput, match=r"no package\.json \(nor requirements\.txt"):
        await shell.install_packages(ctx=ctx)
