"""The per-host package cache: npm's content store shared, its index private.

Real bubblewrap; the poisoning test runs real npm against the registry.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
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
def passable_dir() -> Iterator[Path]:
    """A directory every parent of which uid 64000 can pass (pytest's are 0700 as root)."""
    path = Path(tempfile.mkdtemp(prefix="builder-trees-"))
    path.chmod(0o711)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


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


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("npm") is None, reason="needs npm")
async def test_an_installed_tree_is_kept_and_no_project_can_change_it(
    settings: Settings, passable_dir: Path
) -> None:
    """The second project's install is the first one's tree, put in place without npm;
    the root package's own postinstall still runs in each project; a project that
    attacks the files in its node_modules cannot change what the third project gets."""
    from builder.locks import LockManager
    from builder.tools import shell
    from builder.tools.context import ToolContext

    settings = settings.model_copy(update={"data_dir": passable_dir / "data"})

    manifest = {
        "name": "trees",
        "private": True,
        "dependencies": {"is-number": "7.0.0"},
        "scripts": {"postinstall": "node -e \"require('fs').writeFileSync('post.txt', 'ran')\""},
    }
    boxes = [LocalSandbox(f"proj-tree-{i}", settings=settings, confined=True) for i in range(3)]
    reports: list[str] = []
    try:
        await boxes[0].write_file("package.json", json.dumps(manifest).encode())
        locked = await boxes[0].exec(
            "npm install --package-lock-only --ignore-scripts --no-audit --no-fund", timeout=120
        )
        assert locked.ok, locked.stderr[-2000:]
        lock = await boxes[0].read_file("package-lock.json")
        for box in boxes[1:]:
            await box.write_file("package.json", json.dumps(manifest).encode())
            await box.write_file("package-lock.json", lock)

        async def install(box: LocalSandbox) -> str:
            ctx = ToolContext(
                sandbox=box,
                project_id=box.project_id,
                settings=settings.model_copy(update={"timeout_install": 300}),
                locks=LockManager(None, timeout=5),
            )
            return await shell.install_packages(ctx=ctx)

        reports.append(await install(boxes[0]))
        reports.append(await install(boxes[1]))
        attack = await boxes[1].exec(
            "f=node_modules/is-number/index.js; "
            "(echo 'module.exports = () => \"poisoned\"' > $f) 2>/dev/null; echo write $?; "
            "chmod u+w $f 2>/dev/null; echo chmod $?; "
            "rm -f $f && echo 'module.exports = () => \"mine\"' > $f; echo replace $?"
        )
        mine = await boxes[1].exec("node -e 'console.log(require(\"is-number\")(5))'")
        # The project's tree stays its own to change: npm can add to it.
        added = await boxes[1].exec("npm install --no-audit --no-fund is-odd@3.0.1", timeout=120)
        reports.append(await install(boxes[2]))
        third = await boxes[2].exec("node -e 'console.log(require(\"is-number\")(5))'")
    finally:
        for box in boxes:
            await box.close()
    assert "from the host's cache" not in reports[0], reports
    assert "then ran its postinstall script" in reports[0], reports
    for report in reports[1:]:
        assert report.startswith("Installed with npm: added 1 package from the host's cache"), (
            reports
        )
        assert "then ran its postinstall script" in report
    for box in boxes:
        assert (box.root / "post.txt").read_text() == "ran"
    linked = os.geteuid() == 0  # the sandbox runs as uid 64000: files are hard links
    refused = attack.stdout.splitlines()
    assert refused[2] == "replace 0", attack
    assert (refused[0] != "write 0" and refused[1] != "chmod 0") if linked else True, attack
    assert mine.stdout == "mine\n"
    assert added.ok, added.stderr[-2000:]
    assert third.stdout == "true\n", third
    index = boxes[2].root / "node_modules" / "is-number" / "index.js"
    assert "poisoned" not in index.read_text() and "mine" not in index.read_text()
    if linked:  # hard links into the cache, the service's and read-only
        st = index.stat()
        assert st.st_nlink >= 2 and st.st_uid == 0 and not st.st_mode & 0o222
    entries = list((settings.data_dir / "package-cache" / "trees").iterdir())
    assert len(entries) == 1 and not entries[0].name.startswith(".")


def test_tree_entries_are_atomic_bounded_and_least_recently_used_go(tmp_path: Path) -> None:
    from builder.sandbox.local.trees import TreeCache

    trees = TreeCache(tmp_path / "trees", limit_bytes=250)

    def stored(key: str, size: int) -> None:
        work = trees.begin({"package.json": b'{"scripts": {"x": "y"}}', "package-lock.json": b""})
        assert json.loads((work / "package.json").read_text()) == {}  # root scripts left out
        (work / "node_modules" / "pkg").mkdir(parents=True)
        (work / "node_modules" / "pkg" / "package.json").write_bytes(b"x" * size)
        assert trees.store(work, key) is not None
        assert not work.exists()

    stored("a", 100)
    stored("b", 100)
    assert trees.lookup("a") is not None  # a is now the most recently used
    os.utime(trees.directory / "b", (1, 1))
    stored("c", 100)  # 300 > 250: b, the least recently used, goes
    assert sorted(p.name for p in trees.directory.iterdir()) == ["a", "c"]
    found = trees.lookup("c")
    assert found is not None and found[1].size == 100 and found[1].packages == 1
    assert not (found[0] / "pkg" / "package.json").stat().st_mode & 0o222  # sealed
    # Too large for the limit: not kept. A crashed store's temporary directory goes later.
    work = trees.begin({"package.json": b"{}", "package-lock.json": b""})
    (work / "node_modules").mkdir()
    (work / "node_modules" / "big").write_bytes(b"x" * 300)
    assert trees.store(work, "d") is None and trees.lookup("d") is None
    crashed = trees.begin({"package.json": b"{}", "package-lock.json": b""})
    os.utime(crashed, (1, 1))
    trees.begin({"package.json": b"{}", "package-lock.json": b""})
    assert not crashed.exists()
