"""Structured logging: formats, context variables, timing and redaction."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from builder.log import (
    Redactor,
    bind_context,
    bound_context,
    clear_context,
    configure_logging,
    get_logger,
    timed,
)
from builder.settings import Settings

CANARY = base64.b64encode(b"canary-secret-key-0123456789abcd").decode()


@pytest.fixture
def out() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    yield stream
    clear_context()
    structlog.reset_defaults()
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_builder", False):
            root.removeHandler(handler)


def _json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_production_writes_json_lines_with_bound_context(out: io.StringIO) -> None:
    configure_logging(Settings(environment="production"), stream=out)
    bind_context(request_id="req-1", project_id="p-9")
    get_logger("builder.test", tool="write_file").info("file.written", bytes=12)
    with bound_context(run_id="run-3"):
        get_logger("builder.test").warning("inside")
    get_logger("builder.test").info("after")
    first, inside, after = _json_lines(out)
    assert {
        k: first[k] for k in ("event", "level", "logger", "request_id", "project_id", "tool")
    } == {
        "event": "file.written",
        "level": "info",
        "logger": "builder.test",
        "request_id": "req-1",
        "project_id": "p-9",
        "tool": "write_file",
    }
    assert inside["run_id"] == "run-3" and inside["level"] == "warning"
    assert "run_id" not in after and after["request_id"] == "req-1"


def test_development_writes_console_lines(out: io.StringIO) -> None:
    configure_logging(Settings(), stream=out)
    get_logger("dev").info("hello", answer=42)
    line = out.getvalue().strip()
    assert "hello" in line and "answer=42" in line and not line.startswith("{")


def test_levels_below_the_configured_one_are_dropped(out: io.StringIO) -> None:
    configure_logging(Settings(environment="production", log_level="WARNING"), stream=out)
    log = get_logger("lvl")
    log.info("dropped")
    log.warning("kept")
    assert [e["event"] for e in _json_lines(out)] == ["kept"]


def test_standard_library_records_share_the_pipeline(out: io.StringIO) -> None:
    configure_logging(Settings(environment="production"), stream=out)
    bind_context(request_id="req-std")
    logging.getLogger("uvicorn.error").warning("started on %s", "port 8000")
    (event,) = _json_lines(out)
    assert event["event"] == "started on port 8000" and event["request_id"] == "req-std"


def test_timed_logs_duration_and_errors(out: io.StringIO) -> None:
    configure_logging(Settings(environment="production"), stream=out)
    log = get_logger("t")
    with timed(log, "step", kind="ok") as extra:
        extra["files"] = 3
    with pytest.raises(ValueError, match="x"), timed(log, "step", kind="bad"):
        raise ValueError("x")
    ok, bad = _json_lines(out)
    assert ok["files"] == 3 and isinstance(ok["duration_ms"], float) and ok["level"] == "info"
    assert bad["error"] == "ValueError" and bad["level"] == "warning"


def test_canary_secret_never_reaches_the_output(out: io.StringIO) -> None:
    """The configured encryption key, placed everywhere an event can carry text."""
    settings = Settings(environment="production", encryption_keys=f"k1:{CANARY}")
    configure_logging(settings, stream=out)
    log = get_logger("canary")
    bind_context(request_id=f"ctx-{CANARY}")
    log.info(f"message with {CANARY} inside")
    log.info("nested", payload={"a": [{"b": {"c": f"deep {CANARY}"}}], "t": (CANARY,)})
    try:
        raise RuntimeError(f"failed while using {CANARY}")
    except RuntimeError:
        log.exception("with traceback")
    log.error("exception object", error=ValueError(CANARY))
    logging.getLogger("thirdparty").error("stdlib %s", CANARY)
    text = out.getvalue()
    assert len(_json_lines(out)) == 5
    assert CANARY not in text
    assert text.count("***") >= 6


@pytest.mark.parametrize(
    ("raw", "secret"),
    [
        ("Authorization: Bearer abcDEF123456789xyz", "abcDEF123456789xyz"),
        ("postgresql://app:hunter2pass@db:5432/x", "hunter2pass"),
        ("redis://:redispw99@cache:6379/0", "redispw99"),
        ("key sk-proj-AbCdEfGhIjKlMnOpQrSt", "sk-proj-AbCdEfGhIjKlMnOpQrSt"),
        ("anthropic sk-ant-api03-abcdefghijklmnopqrst", "sk-ant-api03-abcdefghijklmnopqrst"),
        ("builder key bld_0123456789abcdefghij", "bld_0123456789abcdefghij"),
        ("github gho_abcdefghijklmnopqrstuvwxyz12", "gho_abcdefghijklmnopqrstuvwxyz12"),
        ("google ya29.a0AfH6SMBxyzxyzxyz", "ya29.a0AfH6SMBxyzxyzxyz"),
        ('{"access_token": "opaqueTok3n"}', "opaqueTok3n"),
        ("refresh_token=r3fr3sh&x=1", "r3fr3sh"),
        ("e2b e2b_abcdef0123456789abcd", "e2b_abcdef0123456789abcd"),
        ("pat github_pat_11ABCDEFG0123456789abcdef", "github_pat_11ABCDEFG0123456789abcdef"),
        ("slack xoxb-1234567890-abcdef", "xoxb-1234567890-abcdef"),
        ("aws AKIAABCDEFGHIJKLMNOP", "AKIAABCDEFGHIJKLMNOP"),
        ("jwt eyJhbGciOiJI.eyJzdWIiOiIx.c2lnbmF0dXJl", "eyJhbGciOiJI.eyJzdWIiOiIx.c2lnbmF0dXJl"),
        ("TOKEN abcdefgh12345678", "abcdefgh12345678"),
        ("PASSWORD=s3cr3tvalue", "s3cr3tvalue"),
    ],
)
def test_secret_shapes_are_masked_in_text(raw: str, secret: str) -> None:
    masked = Redactor().redact_text(raw)
    assert secret not in masked and "***" in masked


def test_a_secret_added_later_is_masked_in_text_seen_before() -> None:
    redactor = Redactor()
    assert redactor.redact_text("key plainvalue99") == "key plainvalue99"
    redactor.add_secret("plainvalue99")
    assert redactor.redact_text("key plainvalue99") == "key ***"


def test_text_with_no_secret_shape_comes_back_as_it_was() -> None:
    for text in ("model.call", "src/pages/index.html", "a token", "sk-short", "x://host/path"):
        assert Redactor().redact_text(text) == text


def test_secret_named_fields_are_masked_whatever_they_hold() -> None:
    event = {"password": "pw", "nested": {"api_key": "x", "Authorization": "y", "ok": "visible"}}
    assert Redactor().redact(event) == {
        "password": "***",
        "nested": {"api_key": "***", "Authorization": "***", "ok": "visible"},
    }
