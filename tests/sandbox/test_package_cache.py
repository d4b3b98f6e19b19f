"""The per-host package cache: npm's content store shared, its index private.

Real bubblewrap; the poisoning test runs real npm against the registry.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from builder.sandbox import LocalSandbox
from builder.sandbox.local.confine import bwrap_status
from builder.settings import Settings

pytestmark = pytest.mark.skipif(
    bwrap_status()[0] is None, reason=f"confinement unavailable: {bwrap_status()[1]}"
)

STORE = "~/.npm/_cacache"


@pytest.fixture
def settings(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """As root, the sandbox user must pass through pytest's 0700 temporary directories."""
    if os.geteuid() == 0:
        base = tmp_path_factory.getbasetemp()
        for directory in [base, *[p for p in settings.data_dir.parents if base in p.parents]]:
            directory.chmod(directory.stat().st_mode | 0o001)
    return settings


async def test_the_content_store_is_shared_and_the_index_is_not(settings: Settings) -> None:
    one = LocalSandbox("proj-cache-one", settings=settings, confined=True)
    two = LocalSandbox("proj-cache-two", settings=settings, confined=True)
    unconfined = settings.model_copy(update={"sandbox_backend": "local-unconfined"})
    bare = LocalSandbox("proj-cache-bare", settings=unconfined)
    try:
        wrote = await one.exec(
            f"mkdir -p {STORE}/content-v2/sha512/aa {STORE}/index-v5/bb && "
            f"echo content > {STORE}/content-v2/sha512/aa/x && "
            f"echo index > {STORE}/index-v5/bb/y"
        )
        assert wrote.ok, wrote
        seen = await two.exec(
            f"cat {STORE}/content-v2/sha512/aa/x; ls {STORE}/index-v5; echo listed"
        )
        assert seen.stdout == "content\nlisted\n"
        # The twin: unconfined, npm's cache is the workspace's own (HOME is the workspace).
        alone = await bare.exec(f"cat {STORE}/content-v2/sha512/aa/x")
        assert alone.exit_code != 0
    finally:
        for box in (one, two, bare):
            await box.close()
    store = settings.data_dir / "package-cache" / "npm" / "_cacache"
    assert (store / "content-v2" / "sha512" / "aa" / "x").read_text() == "content\n"
    assert not list((store / "index-v5").iterdir())


async def test_the_cache_can_be_moved(settings: Settings, tmp_path: Path) -> None:
    moved = settings.model_copy(update={"package_cache_dir": settings.data_dir / "elsewhere"})
    box = LocalSandbox("proj-cache-moved", settings=moved, confined=True)
    try:
        assert (await box.exec(f"echo c > {STORE}/content-v2-probe")).ok
    finally:
        await box.close()
    assert (settings.data_dir / "elsewhere" / "npm" / "_cacache" / "content-v2-probe").is_file()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("npm") is None, reason="needs npm")
async def test_a_poisoned_tarball_in_the_cache_is_fetched_again(settings: Settings) -> None:
    """A project that rewrites a cached tarball cannot change what another project's
    lock-file install puts in node_modules: npm checks the bytes against the lock
    file's SHA-512, finds them corrupted and fetches the package again."""
    first = LocalSandbox("proj-poisoner", settings=settings, confined=True)
    second = LocalSandbox("proj-victim", settings=settings, confined=True)
    try:
        await first.write_file("package.json", b'{"name": "one", "private": true}')
        installed = await first.exec(
            "npm install --no-audit --no-fund is-number@7.0.0", timeout=120
        )
        assert installed.ok, installed.stderr[-2000:]
        lock = (first.root / "package-lock.json").read_text()
        assert '"resolved": "https://registry.npmjs.org/is-number/-/is-number-7.0.0.tgz"' in lock
        poisoned = await first.exec(
            "mkdir /tmp/evil && cd /tmp/evil && mkdir package && "
            "echo 'module.exports = () => \"poisoned\"' > package/index.js && "
            'echo \'{"name":"is-number","version":"7.0.0"}\' > package/package.json && '
            "tar czf evil.tgz package && "
            f"for f in $(find {STORE}/content-v2 -type f); do cp evil.tgz $f; done; echo done"
        )
        assert poisoned.stdout == "done\n", poisoned
        await second.write_file("package.json", await first.read_file("package.json"))
        await second.write_file("package-lock.json", lock.encode())
        result = await second.exec(
            "npm ci --no-audit --no-fund && node -e 'console.log(require(\"is-number\")(5))'",
            timeout=120,
        )
    finally:
        await first.close()
        await second.close()
    assert result.ok, result.stderr[-2000:]
    # The poisoned bytes were read (so the probe reached the victim) and refused.
    assert "seems to be corrupted" in result.stderr, result.stderr[-2000:]
    assert result.stdout.splitlines()[-1] == "true"
    index = (second.root / "node_modules" / "is-number" / "index.js").read_text()
    assert "poisoned" not in index
    manifest = json.loads((second.root / "node_modules" / "is-number" / "package.json").read_text())
    assert manifest["version"] == "7.0.0" and "description" in manifest
