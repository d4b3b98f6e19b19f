"""E2BSandbox over a fake made of the SDK's own (autospecced) classes and real processes."""

from __future__ import annotations

import asyncio
import hashlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2b import (
    AuthenticationException,
    FileNotFoundException,
    InvalidArgumentException,
    NotEnoughSpaceException,
    SandboxNotRunningException,
    TimeoutException,
)
from pydantic import SecretStr

import builder.sandbox.e2b.sandbox as e2b_module
from builder.errors import (
    BuilderError,
    ConcurrentModification,
    ConfigurationError,
    DependencyUnavailable,
    InvalidInput,
    NotFound,
    OperationTimeout,
    PathOutsideSandbox,
)
from builder.sandbox import E2BSandbox, Sandbox
from builder.settings import Settings
from tests.sandbox.children import RUNAWAY, is_dead, wait_until
from tests.sandbox.fake_e2b import FakeE2B

ROOT = "/home/user/project"


@pytest.fixture
def e2b_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "sandbox_backend": "e2b",
            "e2b_api_key": SecretStr("e2b_test_key_0123456789abcdef"),
            "e2b_template": "builder-node",
            "sandbox_idle_seconds": 600,
        }
    )


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[FakeE2B]:
    service = FakeE2B(tmp_path / "e2b")
    yield service
    await service.shutdown()


@pytest.fixture
async def sandbox(fake: FakeE2B, e2b_settings: Settings) -> AsyncIterator[E2BSandbox]:
    box = await E2BSandbox.create("proj-1", settings=e2b_settings, sandbox_class=fake.sandbox_class)
    yield box
    await box.close()


def project_dir(fake: FakeE2B, sandbox: E2BSandbox) -> Path:
    return fake.vms[sandbox.sandbox_id].root / ROOT.lstrip("/")


async def test_create_tags_the_sandbox_and_makes_the_project_dir(
    fake: FakeE2B, sandbox: E2BSandbox
) -> None:
    assert isinstance(sandbox, Sandbox)
    assert (sandbox.sandbox_id, sandbox.project_id) == ("sbx1", "proj-1")
    assert fake.create_calls == [
        {
            "template": "builder-node",
            "timeout": 600,
            "metadata": {"project_id": "proj-1", "created_by": "builder"},
            "api_key": "e2b_test_key_0123456789abcdef",
            "request_timeout": 30.0,
        }
    ]
    assert project_dir(fake, sandbox).is_dir()
    assert await sandbox.health() is True
    assert await sandbox.preview_url(3000) == "https://3000-sbx1.e2b.app/"


async def test_create_without_an_api_key_is_a_configuration_error(
    fake: FakeE2B, settings: Settings
) -> None:
    with pytest.raises(ConfigurationError, match="BUILDER_E2B_API_KEY"):
        await E2BSandbox.create("proj-1", settings=settings, sandbox_class=fake.sandbox_class)
    assert fake.create_calls == []


async def test_file_operations(fake: FakeE2B, sandbox: E2BSandbox) -> None:
    await sandbox.write_file("src/index.html", b"<h1>hi</h1>")
    await sandbox.write_file("src/app.js", b"console.log(1)")
    await sandbox.write_file("node_modules/x/index.js", b"x" * 100)
    assert await sandbox.read_file("src/index.html") == b"<h1>hi</h1>"
    listing = await sandbox.list_files(".", recursive=True)
    assert [(i.path, i.size, i.is_dir) for i in listing] == [
        ("src", 0, True),
        ("src/app.js", 14, False),
        ("src/index.html", 11, False),
    ]
    await sandbox.write_file(".gitignore", b"dist/\n")
    await sandbox.write_file("dist/index.html", b"built")
    listing = await sandbox.list_files(".", recursive=True)
    assert [i.path for i in listing] == [".gitignore", "src", "src/app.js", "src/index.html"]
    built = await sandbox.list_files("dist", include_ignored=True)
    assert [i.path for i in built] == ["dist/index.html"]
    await sandbox.delete_file(".gitignore")
    await sandbox.delete_file("dist")
    await sandbox.rename_file("src/app.js", "src/js/app.js")
    info = await sandbox.stat("src/js/app.js")
    assert info is not None and (info.path, info.size, info.is_dir) == ("src/js/app.js", 14, False)
    assert await sandbox.stat("nope.txt") is None
    assert await sandbox.disk_usage() == 25
    with pytest.raises(InvalidInput, match="the target exists"):
        await sandbox.rename_file("src/index.html", "src/js/app.js")
    with pytest.raises(InvalidInput, match="into itself"):
        await sandbox.rename_file("src", "src/inner")
    await sandbox.delete_file("src/js")
    with pytest.raises(NotFound):
        await sandbox.read_file("src/js/app.js")
    with pytest.raises(NotFound):
        await sandbox.delete_file("src/js")
    assert (project_dir(fake, sandbox) / "src" / "index.html").read_bytes() == b"<h1>hi</h1>"
    vm = fake.vms["sbx1"]
    assert [p for p in vm.paths if p != ROOT and not p.startswith(ROOT + "/")] == []


async def test_compare_and_swap(fake: FakeE2B, sandbox: E2BSandbox) -> None:
    await sandbox.write_file("a.txt", b"one", expected_sha256="")
    with pytest.raises(ConcurrentModification):
        await sandbox.write_file("a.txt", b"two", expected_sha256="")
    with pytest.raises(ConcurrentModification):
        await sandbox.write_file("a.txt", b"two", expected_sha256=hashlib.sha256(b"x").hexdigest())
    with pytest.raises(ConcurrentModification):
        await sandbox.write_file("b.txt", b"two", expected_sha256=hashlib.sha256(b"x").hexdigest())
    assert (project_dir(fake, sandbox) / "a.txt").read_bytes() == b"one"
    await sandbox.write_file("a.txt", b"two", expected_sha256=hashlib.sha256(b"one").hexdigest())
    assert await sandbox.read_file("a.txt") == b"two"


@pytest.mark.parametrize("path", ["/etc/passwd", "../x", "a/../../x", "a\\..\\x", "a\x00b"])
async def test_unsafe_paths_never_reach_e2b(fake: FakeE2B, sandbox: E2BSandbox, path: str) -> None:
    seen = list(fake.vms["sbx1"].paths)
    for operation in (
        sandbox.read_file(path),
        sandbox.write_file(path, b"x"),
        sandbox.delete_file(path),
        sandbox.rename_file("a.txt", path),
        sandbox.stat(path),
        sandbox.list_files(path),
        sandbox.exec("pwd", cwd=path),
        sandbox.start_process("web", "true", cwd=path),
    ):
        with pytest.raises(PathOutsideSandbox):
            await operation
    assert fake.vms["sbx1"].paths == seen


async def test_exec_output_exit_code_and_cwd(sandbox: E2BSandbox) -> None:
    await sandbox.write_file("app/x.txt", b"x")
    result = await sandbox.exec("pwd; ls; echo oops >&2; exit 3", cwd="app")
    assert (result.exit_code, result.stdout.splitlines()[1:], result.stderr) == (
        3,
        ["x.txt"],
        "oops\n",
    )
    assert result.stdout.splitlines()[0].endswith("/home/user/project/app")
    capped = await sandbox.exec("head -c 5000 /dev/zero | tr '\\0' a", output_limit=100)
    assert capped.stdout == "a" * 50 + "\n[... 4900 bytes cut ...]\n" + "a" * 50
    assert (capped.exit_code, capped.truncated_bytes) == (0, 4900)


async def test_exec_timeout_kills_the_whole_session(fake: FakeE2B, sandbox: E2BSandbox) -> None:
    result = await sandbox.exec(RUNAWAY, timeout=1.5)
    assert (result.timed_out, result.exit_code) == (True, -1)
    workdir = project_dir(fake, sandbox)
    await wait_until(lambda: len((workdir / "pids.txt").read_text().split()) >= 3)
    pids = [int(p) for p in (workdir / "pids.txt").read_text().split()]
    pids.append(int((workdir / "leader.txt").read_text()))
    assert len(pids) == 4
    assert await wait_until(lambda: all(is_dead(pid) for pid in pids))


async def test_exec_leftovers_are_terminated_when_the_command_exits(
    fake: FakeE2B, sandbox: E2BSandbox
) -> None:
    result = await sandbox.exec("sleep 300 & echo $! > pid.txt; echo started")
    assert (result.exit_code, result.stdout, result.timed_out) == (0, "started\n", False)
    pid = int((project_dir(fake, sandbox) / "pid.txt").read_text())
    assert await wait_until(lambda: is_dead(pid))


async def test_dev_server_and_process_table(fake: FakeE2B, sandbox: E2BSandbox) -> None:
    await sandbox.write_file("hello.txt", b"hello from e2b")
    info = await sandbox.start_process(
        "web", f"{sys.executable} -u -m http.server {{port}} --bind 127.0.0.1"
    )
    assert (info.name, info.running, info.port) == ("web", True, 3000)
    assert info.preview_url == "https://3000-sbx1.e2b.app/"
    assert fake.vms["sbx1"].commands[-1].endswith("--bind 127.0.0.1'")
    async with httpx.AsyncClient() as client:
        body = None
        for _ in range(200):
            try:
                response = await client.get("http://127.0.0.1:3000/hello.txt")
            except httpx.TransportError:
                await asyncio.sleep(0.05)
                continue
            body = (response.status_code, response.text)
            break
        assert body == (200, "hello from e2b")

    async def logged() -> bool:
        current = await sandbox.process_info("web")
        return current is not None and any('"GET /hello.txt' in x for x in current.logs)

    for _ in range(200):
        if await logged():
            break
        await asyncio.sleep(0.05)
    assert await logged()
    second = await sandbox.start_process("env", "echo port=$PORT; sleep 300")
    assert second.port == 3001
    assert await sandbox.stop_process("web") is True
    stopped = await sandbox.process_info("web")
    assert stopped is not None and (stopped.running, stopped.exit_code) == (False, -1)
    assert await sandbox.stop_process("web") is False
    assert await sandbox.process_info("missing") is None
    for _ in range(200):
        env = await sandbox.process_info("env")
        if env is not None and env.logs:
            break
        await asyncio.sleep(0.05)
    assert env is not None and env.logs == ["port=3001"]


async def test_keep_alive_extends_the_sandbox_lifetime(
    fake: FakeE2B, sandbox: E2BSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    vm = fake.vms["sbx1"]
    vm.timeout = None
    await sandbox.stat(".")
    assert vm.timeout is None  # extended at most once a minute
    monkeypatch.setattr(e2b_module, "KEEPALIVE_INTERVAL", 0.0)
    await sandbox.stat(".")
    assert vm.timeout == 600
    await sandbox.keep_alive(120)
    assert vm.timeout == 120


async def test_an_expired_sandbox_is_unhealthy_and_reports_unavailable(
    fake: FakeE2B, sandbox: E2BSandbox
) -> None:
    fake.vms["sbx1"].alive = False
    assert await sandbox.health() is False
    with pytest.raises(DependencyUnavailable) as caught:
        await sandbox.read_file("a.txt")
    assert caught.value.dependency == "e2b"
    with pytest.raises(DependencyUnavailable):
        await sandbox.exec("true")
    await sandbox.close()  # killing a gone sandbox is fine


async def test_connect_reattaches_by_id(
    fake: FakeE2B, sandbox: E2BSandbox, e2b_settings: Settings
) -> None:
    await sandbox.write_file("a.txt", b"persisted")
    again = await E2BSandbox.connect(
        "proj-1", "sbx1", settings=e2b_settings, sandbox_class=fake.sandbox_class
    )
    assert (again.sandbox_id, await again.read_file("a.txt")) == ("sbx1", b"persisted")
    with pytest.raises(DependencyUnavailable):
        await E2BSandbox.connect(
            "proj-1", "sbx-missing", settings=e2b_settings, sandbox_class=fake.sandbox_class
        )


async def test_close_kills_the_sandbox(fake: FakeE2B, e2b_settings: Settings) -> None:
    box = await E2BSandbox.create("p", settings=e2b_settings, sandbox_class=fake.sandbox_class)
    await box.start_process("sleeper", "sleep 300")
    await box.close()
    assert fake.vms[box.sandbox_id].alive is False
    info = await box.process_info("sleeper")
    assert info is not None and info.running is False


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (FileNotFoundException("no such file"), NotFound),
        (SandboxNotRunningException("sandbox was not found"), DependencyUnavailable),
        (TimeoutException("deadline exceeded"), OperationTimeout),
        (InvalidArgumentException("is a directory"), InvalidInput),
        (AuthenticationException("bad key"), DependencyUnavailable),
        (NotEnoughSpaceException("disk full"), DependencyUnavailable),
        (httpx.ConnectError("refused"), DependencyUnavailable),
    ],
)
async def test_sdk_errors_map_to_builder_errors(
    sandbox: E2BSandbox, raised: Exception, expected: type[BuilderError]
) -> None:
    async def fail(*args: Any, **kwargs: Any) -> Any:
        raise raised

    sandbox._sdk.files.read.side_effect = fail
    with pytest.raises(expected) as caught:
        await sandbox.read_file("a.txt")
    assert type(caught.value) is expected
    assert caught.value.__cause__ is raised


async def test_the_fake_refuses_calls_the_sdk_would_refuse(fake: FakeE2B) -> None:
    """Shows the fake can fail: wrong names or arguments raise as the real SDK would."""
    with pytest.raises(TypeError):
        await fake.sandbox_class.connect("sbx1", apikey="typo")
    sdk = await fake.sandbox_class.create(template="base", api_key="k")
    with pytest.raises(TypeError):
        await sdk.files.read("/home/user/a.txt", fmt="bytes")
    with pytest.raises(TypeError):
        await sdk.set_timeout(seconds=10)
    with pytest.raises(AttributeError):
        sdk.files.read_bytes  # noqa: B018 - the attribute access itself must fail
    with pytest.raises(TypeError):
        await fake.sandbox_class.create(template="base", api_keys="k")
