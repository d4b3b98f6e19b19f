"""Settings: defaults, environment parsing and production validation."""

from __future__ import annotations

import base64
import inspect
import re
from pathlib import Path

import pytest

import builder
from builder.errors import ConfigurationError, UnsafeProductionSettings
from builder.settings import Settings, get_settings, normalize_database_url, settings_table

KEY = base64.b64encode(b"k" * 32).decode()
SAFE_PRODUCTION = {
    "environment": "production",
    "encryption_keys": f"k1:{KEY}",
    "cors_origins": "https://app.example.com",
}


def test_defaults_are_the_documented_budgets() -> None:
    s = Settings()
    assert (s.timeout_sandbox, s.timeout_ai, s.timeout_db) == (30, 60, 10)
    assert (s.timeout_dev_server, s.timeout_install) == (120, 300)
    assert s.max_write_bytes == 1024 * 1024
    assert (s.context_ttl_seconds, s.max_live_contexts) == (1800, 100)
    assert (s.cache_ttl_project, s.cache_ttl_messages) == (300, 120)
    assert s.cache_lru_size == 500
    assert (s.rate_limit_chat, s.rate_limit_prompt, s.rate_limit_default) == (
        "20/minute",
        "30/minute",
        "100/minute",
    )
    assert s.database_url is None and s.redis_url is None
    assert s.anonymous_allowed and s.serve_docs and s.effective_log_format == "console"


def test_environment_variables_are_read_with_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUILDER_TIMEOUT_AI", "12.5")
    monkeypatch.setenv("BUILDER_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("BUILDER_DATABASE_URL", "postgres://u@db:5432/app")
    s = Settings()
    assert s.timeout_ai == 12.5
    assert s.timeout_for("ai") == 12.5
    assert s.cors_origins == ["https://a.example", "https://b.example"]
    assert s.database_url == "postgresql+psycopg://u@db:5432/app"


def test_dotenv_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("BUILDER_MAX_STEPS=7\n")
    monkeypatch.chdir(tmp_path)
    assert Settings().max_steps == 7


def test_get_settings_is_cached_and_not_built_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUILDER_MAX_STEPS", "3")
    first = get_settings()
    monkeypatch.setenv("BUILDER_MAX_STEPS", "4")
    assert get_settings() is first and first.max_steps == 3
    get_settings.cache_clear()
    assert get_settings().max_steps == 4


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgresql://u@h:5433/db", "postgresql+psycopg://u@h:5433/db"),
        ("postgresql+psycopg2://h/db", "postgresql+psycopg://h/db"),
        ("postgresql+psycopg://h/db?sslmode=require", "postgresql+psycopg://h/db?sslmode=require"),
    ],
)
def test_database_url_forms_are_accepted(url: str, expected: str) -> None:
    assert normalize_database_url(url) == expected


@pytest.mark.parametrize("url", ["sqlite:///x.db", "mysql://h/db", "not a url"])
def test_non_postgres_database_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="BUILDER_DATABASE_URL"):
        Settings(database_url=url)


def test_safe_production_settings_pass() -> None:
    s = Settings(**SAFE_PRODUCTION)
    s.validate_for_production()
    assert not s.anonymous_allowed and not s.serve_docs and s.effective_log_format == "json"


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ({"allow_anonymous": True}, "BUILDER_ALLOW_ANONYMOUS"),
        ({"encryption_keys": None}, "BUILDER_ENCRYPTION_KEYS is not set"),
        ({"encryption_keys": "k1:short"}, "not valid base64"),
        ({"cors_origins": "*"}, "BUILDER_CORS_ORIGINS contains `*`"),
        ({"debug": True}, "BUILDER_DEBUG"),
        ({"sandbox_backend": "e2b"}, "BUILDER_E2B_API_KEY"),
    ],
)
def test_each_unsafe_production_setting_is_reported(
    override: dict[str, object], problem: str
) -> None:
    s = Settings(**{**SAFE_PRODUCTION, **override})
    with pytest.raises(UnsafeProductionSettings) as info:
        s.validate_for_production()
    assert len(info.value.problems) == 1
    assert problem in info.value.problems[0]


def test_all_production_problems_are_reported_in_one_error() -> None:
    s = Settings(environment="production", allow_anonymous=True, cors_origins="*", debug=True)
    with pytest.raises(UnsafeProductionSettings) as info:
        s.validate_for_production()
    assert [re.findall(r"BUILDER_[A-Z_]+", p)[0] for p in info.value.problems] == [
        "BUILDER_ALLOW_ANONYMOUS",
        "BUILDER_ENCRYPTION_KEYS",
        "BUILDER_CORS_ORIGINS",
        "BUILDER_DEBUG",
    ]
    assert "4 unsafe setting(s)" in str(info.value)


def test_development_never_refuses() -> None:
    Settings(cors_origins="*", debug=True).validate_for_production()


def test_encryption_keys_parse_primary_first() -> None:
    other = base64.b64encode(b"o" * 32).decode()
    s = Settings(encryption_keys=f"new:{KEY},old:{other}")
    assert s.parsed_encryption_keys() == [("new", b"k" * 32), ("old", b"o" * 32)]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("nocolon", "is not `id:base64-key`"),
        ("k1:!!!!", "not valid base64"),
        (f"k1:{base64.b64encode(b'x' * 16).decode()}", "is 16 bytes"),
        (f"k1:{KEY},k1:{KEY}", "repeats key id"),
    ],
)
def test_malformed_encryption_keys_are_clear_errors(value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        Settings(encryption_keys=value).parsed_encryption_keys()


def test_readme_configuration_table_matches_the_settings() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    begin, end = "<!-- settings-table:begin -->", "<!-- settings-table:end -->"
    assert begin in readme and end in readme, "README lost its settings table markers"
    table = readme.split(begin, 1)[1].split(end, 1)[0].strip()
    assert table == settings_table(), "README table is stale: run `builder config reference`"


def test_every_setting_is_read_by_the_code() -> None:
    """A documented setting that nothing reads misleads operators: wire it or drop it."""
    package = Path(builder.__file__).parent
    sources = "\n".join(
        path.read_text() for path in package.rglob("*.py") if path.name != "settings.py"
    )
    derived = {
        name: inspect.getsource(member.fget)
        for name, member in inspect.getmembers(Settings)
        if isinstance(member, property) and member.fget is not None
    }
    unread = []
    for field in Settings.model_fields:
        if re.search(rf"\.{field}\b", sources):
            continue
        readers = [name for name, body in derived.items() if f"self.{field}" in body]
        if not any(re.search(rf"\.{name}\b", sources) for name in readers):
            unread.append(field)
    assert unread == []
