"""Settings: the one configuration object of builder.

Every value comes from a ``BUILDER_*`` environment variable (or a ``.env`` file) and
has a default that works on a developer machine. Obtain it with :func:`get_settings`
(cached) or build one and pass it in; nothing builds settings at import time.
"""

from __future__ import annotations

import base64
import binascii
import logging
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from builder.errors import ConfigurationError, UnsafeProductionSettings

__all__ = ["McpServer", "OAuthProvider", "OperationKind", "Settings", "get_settings"]

OperationKind = Literal["sandbox", "ai", "db", "dev_server", "install"]
"""The kinds of operation that have their own time budget."""

MiB = 1024 * 1024


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("builder", appauthor=False))


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class OAuthProvider(BaseModel):
    """One OAuth 2 provider users can connect (an entry of ``BUILDER_OAUTH_PROVIDERS``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    authorize_url: str = Field(pattern=r"^https?://")
    token_url: str = Field(pattern=r"^https?://")
    scopes: list[str] = Field(default_factory=list)
    authorize_params: dict[str, str] = Field(
        default_factory=dict, description="Extra query parameters of the authorize URL."
    )


class ModelPrice(BaseModel):
    """US dollars per million tokens of each kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(ge=0, description="Uncached input tokens.")
    output: float = Field(ge=0, description="Output tokens.")
    cache_read: float | None = Field(
        None, ge=0, description="Input tokens read from the prompt cache (default: input)."
    )
    cache_write: float | None = Field(
        None, ge=0, description="Input tokens written to the prompt cache (default: input)."
    )


class McpServer(BaseModel):
    """One MCP server whose tools the agent may call (an entry of ``BUILDER_MCP_SERVERS``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transport: Literal["stdio", "streamable_http"]
    command: str | None = Field(None, min_length=1, description="stdio: the program to start.")
    args: list[str] = Field(default_factory=list, description="stdio: its arguments.")
    env: dict[str, str] | None = Field(None, description="stdio: its environment.")
    cwd: str | None = Field(None, description="stdio: its working directory.")
    url: str | None = Field(None, pattern=r"^https?://", description="streamable_http: the URL.")
    headers: dict[str, str] | None = Field(None, description="streamable_http: extra headers.")

    @model_validator(mode="after")
    def _endpoint_given(self) -> McpServer:
        if self.transport == "stdio" and not self.command:
            raise ValueError("a stdio MCP server needs a command")
        if self.transport == "streamable_http" and not self.url:
            raise ValueError("a streamable_http MCP server needs a url")
        return self


class Settings(BaseSettings):
    """All of builder's configuration.

    Field names map to environment variables with the ``BUILDER_`` prefix
    (``timeout_ai`` ← ``BUILDER_TIMEOUT_AI``). The README's configuration table is
    generated from this class by :func:`builder.settings.settings_table`.
    """

    model_config = SettingsConfigDict(
        env_prefix="BUILDER_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    # --- runtime -------------------------------------------------------------------
    environment: Literal["development", "production"] = Field(
        "development", description="`development` or `production` (strict checks, JSON logs)."
    )
    debug: bool = Field(False, description="Debug mode; refused in production.")
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Where workspaces, the embedded database and screenshots live.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Lowest log level written."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="`auto` = JSON lines in production, console lines in development."
    )

    # --- storage -------------------------------------------------------------------
    database_url: str | None = Field(
        None,
        description="PostgreSQL URL; unset = embedded PostgreSQL in the data directory.",
    )
    db_pool_size: int = Field(
        10,
        ge=1,
        description="Connections kept in the pool (the database's, the checkpointer's and "
        "the lock manager's each hold up to this plus the overflow).",
    )
    db_max_overflow: int = Field(
        5,
        ge=0,
        description="Extra connections beyond the pool, each closed as soon as it is "
        "returned: a process busier than its pool opens and closes a connection per "
        "transaction.",
    )
    db_pool_recycle: int = Field(1800, ge=1, description="Seconds before a connection is renewed.")
    redis_url: str | None = Field(
        None, description="Redis URL; unset = in-process cache and rate limits (one node)."
    )
    redis_key_prefix: str = Field("builder:", description="Prefix of every Redis key.")
    redis_timeout: float = Field(
        0.1,
        gt=0,
        description="Seconds one Redis connect or command may take before the cache "
        "answers from its in-process fallback.",
    )

    # --- model ---------------------------------------------------------------------
    model: str | None = Field(
        None,
        description="Chat model as `provider:model` (e.g. `openai:gpt-4.1`, `scripted:demo`).",
    )
    model_base_url: str | None = Field(
        None, description="OpenAI-compatible base URL for a local model server."
    )
    model_api_key: SecretStr | None = Field(
        None, description="API key for the model provider (else the provider's own variable)."
    )
    model_images: bool | None = Field(
        None,
        description="Whether the model reads images (offers it the `screenshot_preview` "
        "tool); unset: as the model's LangChain profile says, no when it has none.",
    )
    model_retries: int = Field(
        4, ge=0, description="Retries of a model call after a rate limit, 5xx or network error."
    )
    model_retry_max_wait: float = Field(
        20, gt=0, description="Longest pause in seconds before a model call is retried."
    )
    max_steps: int = Field(60, ge=1, description="Most agent steps (model calls) in one run.")
    check_rounds: int = Field(
        3,
        ge=0,
        le=20,
        description="How many times one run gives the model the end-of-turn check's problems "
        "to fix before ending with the check failed; 0 turns the check off.",
    )
    run_token_budget: int = Field(400_000, ge=1, description="Most tokens one run may use.")
    run_cost_budget: float | None = Field(
        None,
        gt=0,
        description="Most US dollars one run may spend (needs the model's price); unset: none.",
    )
    model_prices: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description="Prices in US dollars per million tokens by model name, added to the "
        'built-in table (JSON: {"my-model": {"input": 1.0, "output": 2.0}}).',
    )
    context_token_budget: int = Field(
        32_000, ge=1000, description="Messages sent to the model are trimmed to this many tokens."
    )

    # --- timeouts (seconds) ----------------------------------------------------------
    timeout_sandbox: float = Field(30, gt=0, description="Sandbox file and command operations.")
    timeout_ai: float = Field(60, gt=0, description="One model call.")
    timeout_db: float = Field(10, gt=0, description="Database connect and statement timeout.")
    timeout_dev_server: float = Field(120, gt=0, description="Starting a dev server.")
    timeout_install: float = Field(300, gt=0, description="Installing packages.")
    lock_timeout: float = Field(30, gt=0, description="Waiting for a file or run lock.")
    # --- run queue and workers -------------------------------------------------------
    run_worker: bool = Field(
        True,
        description="`builder serve` also works queued runs in its own process "
        "(`builder serve --no-worker` turns it off).",
    )
    worker_concurrency: int = Field(
        50,
        ge=1,
        description="Most runs one worker process works at once (at most "
        "BUILDER_SANDBOX_POOL_SIZE: each run holds a sandbox).",
    )
    run_lease_seconds: float = Field(
        30,
        ge=1,
        description="How long a worker's claim on a run lasts without a heartbeat: a run "
        "whose worker died is taken over after at most this long.",
    )
    run_poll_seconds: float = Field(
        0.5, gt=0, description="How often a worker looks for queued runs it may claim."
    )
    run_affinity_seconds: float = Field(
        5,
        ge=0,
        description="How long a queued run waits for the replica that runs its project's "
        "dev server (whose sandbox the preview shows) before any replica may take it.",
    )
    run_max_attempts: int = Field(
        3, ge=1, description="Times a run is started or taken over before it is failed."
    )
    runs_per_user: int = Field(
        0, ge=0, description="Most runs of one user working at once (0 = no cap)."
    )
    runs_global: int = Field(
        0, ge=0, description="Most runs working at once across every worker (0 = no cap)."
    )
    shutdown_grace_seconds: float = Field(
        20,
        ge=0,
        description="On SIGTERM, how long a worker lets its runs' current steps finish "
        "before it hands them to another worker.",
    )

    # --- limits --------------------------------------------------------------------
    max_write_bytes: int = Field(1 * MiB, ge=1, description="Largest single file write.")
    project_quota_bytes: int = Field(
        200 * MiB, ge=1, description="Most bytes of files one project workspace may hold."
    )
    max_request_bytes: int = Field(
        10 * MiB, ge=1024, description="Largest HTTP request body; larger answers 413."
    )
    tool_output_chars: int = Field(
        8000, ge=200, description="Tool results longer than this are truncated with a note."
    )
    max_image_bytes: int = Field(
        4 * MiB,
        ge=1024,
        description="Largest image attached to a chat turn (decoded bytes); larger answers "
        "413. Up to 4 images per turn, within BUILDER_MAX_REQUEST_BYTES as base64.",
    )

    # --- agent context ---------------------------------------------------------------
    context_ttl_seconds: int = Field(
        1800, ge=1, description="Idle seconds before an agent context (thread) expires."
    )
    max_live_contexts: int = Field(100, ge=1, description="Most agent contexts kept at once.")
    context_sweep_strategy: Literal["delete", "keep_latest"] = Field(
        "delete", description="What the sweeper does to an expired context."
    )
    maintenance_seconds: float = Field(
        60,
        ge=0,
        description="How often a running service sweeps expired contexts and idle "
        "sandboxes; 0 = never (run `builder sweep` from a scheduler instead).",
    )

    # --- cache ---------------------------------------------------------------------
    cache_ttl_project: int = Field(300, ge=1, description="Seconds a cached project lives.")
    cache_ttl_messages: int = Field(120, ge=1, description="Seconds a cached message page lives.")
    cache_ttl_api_key: int = Field(
        30, ge=1, description="Seconds an authenticated API key is cached (revoking clears it)."
    )
    cache_near_seconds: float = Field(
        5,
        ge=0,
        description="With Redis, seconds a process may answer an authenticated API key "
        "from its own memory; revoking a key is broadcast to every process at once, this "
        "bounds how stale a copy can be if a broadcast is missed (0 = always ask Redis).",
    )
    cache_lru_size: int = Field(500, ge=1, description="Entries in the in-process LRU fallback.")
    cache_cooldown_seconds: float = Field(
        10,
        gt=0,
        description="After a Redis failure, seconds the cache stays on its fallback "
        "before trying Redis again.",
    )

    # --- HTTP ----------------------------------------------------------------------
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://localhost:3000", "http://127.0.0.1:3000"],
        description="Comma-separated origins allowed by CORS; `*` is refused in production.",
    )
    rate_limit_chat: str = Field("20/minute", description="Chat requests per API key.")
    rate_limit_prompt: str = Field("30/minute", description="Prompt-helper requests per API key.")
    rate_limit_default: str = Field("100/minute", description="Other requests per API key.")
    allow_anonymous: bool | None = Field(
        None,
        description="Let requests without an API key act as the local user; "
        "default on in development, refused in production.",
    )
    docs_enabled: bool | None = Field(
        None, description="Serve `/docs`; default on in development, off in production."
    )
    sentry_dsn: SecretStr | None = Field(None, description="Sentry DSN; unset = no reporting.")
    public_url: str | None = Field(
        None, description="Public base URL of the service (OAuth redirect URLs)."
    )
    preview_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Port of the preview gateway's own listener (`builder serve`); "
        "unset = previews only through `BUILDER_PREVIEW_BASE_URL`'s wildcard host.",
    )
    preview_base_url: str | None = Field(
        None,
        description="Public URL of a preview with a `{token}` host label, e.g. "
        "`https://{token}.preview.example.com`; unset = `http://{token}.localhost:<preview port>`.",
    )
    preview_token_ttl: int = Field(
        24 * 3600, ge=60, description="Seconds a preview link stays valid."
    )
    advertise_url: str | None = Field(
        None,
        description="Where the other replicas reach this one's HTTP listener, e.g. "
        "`http://10.0.0.5:8000` (a private address); previews of the dev servers this "
        "replica runs are forwarded there. Unset = a single replica.",
    )
    preview_forward: bool = Field(
        True,
        description="Forward a preview whose dev server runs on another replica to it; "
        "false = answer 421 naming that replica's `BUILDER_ADVERTISE_URL`.",
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Key that signs OAuth state; unset = derived from the primary encryption key.",
    )
    oauth_providers: dict[str, OAuthProvider] = Field(
        default_factory=dict,
        description="JSON object: provider name → `client_id`, `client_secret`, "
        "`authorize_url`, `token_url`, `scopes`.",
    )
    oauth_state_seconds: int = Field(
        600, ge=30, description="Seconds an OAuth authorize link (its signed state) stays valid."
    )
    metrics_token: SecretStr | None = Field(
        None, description="Bearer token `/metrics` requires; unset = `/metrics` is open."
    )
    browser_path: str | None = Field(
        None,
        description="Chromium executable for screenshots; unset = `chromium`, "
        "`chromium-browser` or `google-chrome` on PATH.",
    )
    timeout_screenshot: float = Field(30, gt=0, description="Seconds one screenshot may take.")
    timeout_publish: float = Field(
        300, gt=0, description="Seconds one git command or one host API call may take."
    )
    github_api_url: str = Field(
        "https://api.github.com", description="GitHub's REST API (GitHub Enterprise: its own)."
    )
    netlify_api_url: str = Field(
        "https://api.netlify.com/api/v1", description="Netlify's REST API."
    )
    netlify_deploy_seconds: float = Field(
        300, gt=0, description="How long a Netlify deploy may take to become ready."
    )
    screenshots_kept: int = Field(20, ge=1, description="Screenshots kept per project.")

    # --- secrets -------------------------------------------------------------------
    encryption_keys: SecretStr | None = Field(
        None,
        description="Comma-separated `id:base64-32-bytes` keys; the first encrypts, "
        "all decrypt (rotation).",
    )

    ready_model_call: bool = Field(
        False,
        description="Readiness also sends the model a one-token request (one provider call "
        "per probe); off = readiness checks the model is configured and its integration loads.",
    )

    # --- sandboxes -----------------------------------------------------------------
    sandbox_backend: Literal["local", "local-unconfined", "e2b"] = Field(
        "local",
        description="`local` (a workspace per project, commands confined by bubblewrap "
        "where it works), `local-unconfined` (development only) or `e2b`.",
    )
    sandbox_network: Literal["isolated", "host", "none"] = Field(
        "isolated",
        description="Network of confined sandbox commands: `isolated` (own namespace with "
        "outbound access through pasta: installs work, the host's loopback services are "
        "unreachable; falls back to `host`, logged, where pasta does not work), `host` "
        "(the host's network, loopback services included) or `none` (loopback only, no "
        "installs).",
    )
    sandbox_uid: int = Field(
        64000,
        ge=1,
        le=2**32 - 2,
        description="Host uid confined sandbox commands run as when the service runs as "
        "root (so the process limit and file ownership hold); give it no other account.",
    )
    sandbox_gid: int = Field(
        64000, ge=1, le=2**32 - 2, description="Host gid that goes with `BUILDER_SANDBOX_UID`."
    )
    package_cache_dir: Path | None = Field(
        None,
        description="Host directory of the package cache shared by confined sandboxes "
        "(npm's content-addressed store, installed `node_modules` trees); unset = "
        "`<BUILDER_DATA_DIR>/package-cache`.",
    )
    package_tree_cache_bytes: int = Field(
        4 * 1024**3,
        ge=0,
        description="Most bytes of installed `node_modules` trees kept in the package cache "
        "for later installs from the same lock file (least recently used go first); "
        "0 turns that part of the cache off.",
    )
    allow_unconfined_sandbox: bool = Field(
        False,
        description="Let production run `local-unconfined` sandboxes (logged at every start).",
    )
    e2b_api_key: SecretStr | None = Field(None, description="E2B API key for `e2b` sandboxes.")
    e2b_template: str = Field("base", description="E2B template sandboxes are created from.")
    sandbox_pool_size: int = Field(16, ge=1, description="Most live sandboxes per process.")
    sandbox_idle_seconds: int = Field(
        900, ge=1, description="Idle seconds before a pooled sandbox may be closed."
    )
    sandbox_cpu_seconds: int = Field(600, ge=1, description="CPU seconds per sandbox command.")
    sandbox_memory_bytes: int = Field(
        4096 * MiB, ge=64 * MiB, description="Data-segment (heap) limit per sandbox command."
    )
    sandbox_max_processes: int = Field(
        512, ge=8, description="Process limit per sandbox command (per user on Linux)."
    )
    sandbox_output_bytes: int = Field(
        64 * 1024, ge=1024, description="Command output kept (the rest is cut with a note)."
    )
    mcp_servers: dict[str, McpServer] = Field(
        default_factory=dict,
        description="JSON object: MCP server name → `transport` (`stdio`: `command`, `args`, "
        "`env`, `cwd`; `streamable_http`: `url`, `headers`); their tools are the agent's.",
    )
    load_plugins: str | None = Field(
        None,
        description="Comma-separated allow-list of third-party plugins; empty = none; "
        "unset = all installed.",
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _parse_origins(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("advertise_url")
    @classmethod
    def _check_advertise_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        split = urlsplit(value.strip())
        if split.scheme not in ("http", "https") or not split.hostname:
            raise ValueError(f"must be an http(s) URL such as http://10.0.0.5:8000; got {value!r}")
        if split.path not in ("", "/") or split.query or split.fragment:
            raise ValueError(f"must be a bare origin, without a path; got {value!r}")
        return f"{split.scheme}://{split.netloc}"

    @field_validator("database_url")
    @classmethod
    def _normalize_database_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return normalize_database_url(value.strip())

    # --- derived values ------------------------------------------------------------
    @property
    def is_production(self) -> bool:
        """True in production."""
        return self.environment == "production"

    @property
    def anonymous_allowed(self) -> bool:
        """Whether requests without an API key act as the local user."""
        if self.allow_anonymous is None:
            return not self.is_production
        return self.allow_anonymous

    @property
    def serve_docs(self) -> bool:
        """Whether the HTTP service serves interactive API docs."""
        if self.docs_enabled is None:
            return not self.is_production
        return self.docs_enabled

    @property
    def effective_log_format(self) -> Literal["json", "console"]:
        """The log format after resolving `auto`."""
        if self.log_format == "auto":
            return "json" if self.is_production else "console"
        return self.log_format

    def timeout_for(self, operation: OperationKind) -> float:
        """Seconds allowed for one operation of the given kind."""
        return {
            "sandbox": self.timeout_sandbox,
            "ai": self.timeout_ai,
            "db": self.timeout_db,
            "dev_server": self.timeout_dev_server,
            "install": self.timeout_install,
        }[operation]

    def parsed_encryption_keys(self) -> list[tuple[str, bytes]]:
        """The encryption keys as ``(key_id, 32 bytes)``, primary first.

        Raises:
            ConfigurationError: A key is malformed or a key id repeats.
        """
        if self.encryption_keys is None:
            return []
        keys: list[tuple[str, bytes]] = []
        for position, item in enumerate(_split_csv(self.encryption_keys.get_secret_value()), 1):
            key_id, sep, encoded = item.partition(":")
            if not sep or not key_id or not encoded:
                raise ConfigurationError(
                    f"BUILDER_ENCRYPTION_KEYS entry {position} is not `id:base64-key`"
                )
            try:
                raw = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise ConfigurationError(
                    f"BUILDER_ENCRYPTION_KEYS key {key_id!r} is not valid base64"
                ) from None
            if len(raw) != 32:
                raise ConfigurationError(
                    f"BUILDER_ENCRYPTION_KEYS key {key_id!r} is {len(raw)} bytes; "
                    "AES-256 needs exactly 32"
                )
            if any(existing == key_id for existing, _ in keys):
                raise ConfigurationError(f"BUILDER_ENCRYPTION_KEYS repeats key id {key_id!r}")
            keys.append((key_id, raw))
        return keys

    def secret_values(self) -> list[str]:
        """Every configured secret, so logs can mask them wherever they appear."""
        secrets: list[str] = []
        for value in (
            self.model_api_key,
            self.e2b_api_key,
            self.sentry_dsn,
            self.secret_key,
            self.metrics_token,
            *(provider.client_secret for provider in self.oauth_providers.values()),
        ):
            if value is not None and value.get_secret_value():
                secrets.append(value.get_secret_value())
        if self.encryption_keys is not None:
            for item in _split_csv(self.encryption_keys.get_secret_value()):
                _, _, encoded = item.partition(":")
                if encoded:
                    secrets.append(encoded)
        return secrets

    def production_problems(self) -> list[str]:
        """Every reason these settings are unsafe for production (empty when safe)."""
        problems: list[str] = []
        if self.allow_anonymous:
            problems.append(
                "BUILDER_ALLOW_ANONYMOUS is on: requests without an API key would be served"
            )
        if self.encryption_keys is None:
            problems.append(
                "BUILDER_ENCRYPTION_KEYS is not set: OAuth tokens cannot be stored encrypted"
            )
        else:
            try:
                self.parsed_encryption_keys()
            except ConfigurationError as exc:
                problems.append(str(exc))
        if "*" in self.cors_origins:
            problems.append("BUILDER_CORS_ORIGINS contains `*`: any site could call the API")
        if self.debug:
            problems.append("BUILDER_DEBUG is on: debug output can leak internals")
        if self.sandbox_backend == "e2b" and self.e2b_api_key is None:
            problems.append("BUILDER_SANDBOX_BACKEND is e2b but BUILDER_E2B_API_KEY is not set")
        if self.sandbox_backend == "local-unconfined" and not self.allow_unconfined_sandbox:
            problems.append(
                "BUILDER_SANDBOX_BACKEND is local-unconfined: agent commands could read the "
                "host's files and secrets and reach its services "
                "(set BUILDER_ALLOW_UNCONFINED_SANDBOX=true to accept that)"
            )
        return problems

    def validate_for_production(self) -> None:
        """Refuse unsafe production settings, listing every problem in one error.

        Does nothing in development.

        Raises:
            UnsafeProductionSettings: One or more problems; all are in ``.problems``.
        """
        if not self.is_production:
            return
        if self.sandbox_backend == "local-unconfined" and self.allow_unconfined_sandbox:
            logging.getLogger(__name__).warning(
                "BUILDER_ALLOW_UNCONFINED_SANDBOX is on: agent commands run unconfined "
                "and can read the host's files and secrets"
            )
        problems = self.production_problems()
        if problems:
            raise UnsafeProductionSettings(problems)


def normalize_database_url(url: str) -> str:
    """Turn ``postgres://``, ``postgresql://`` and driver URLs into the psycopg 3 form.

    Raises:
        ConfigurationError: The URL is not a PostgreSQL URL.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigurationError("BUILDER_DATABASE_URL must look like postgresql://user@host/db")
    base = scheme.split("+", 1)[0].lower()
    if base not in {"postgres", "postgresql"}:
        raise ConfigurationError(f"BUILDER_DATABASE_URL must be a PostgreSQL URL, not {scheme!r}")
    return f"postgresql+psycopg://{rest}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once.

    Tests and apps that need other values build a :class:`Settings` and pass it in, or
    call ``get_settings.cache_clear()`` after changing the environment.
    """
    return Settings()


def settings_table() -> str:
    """A Markdown table of every setting: environment variable, default, meaning."""
    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        env = f"BUILDER_{name.upper()}"
        if name == "data_dir":
            default = "platform data dir (`~/.local/share/builder` on Linux)"
        elif field.default_factory is not None:
            made = field.default_factory()  # type: ignore[call-arg]
            default = ",".join(made) if isinstance(made, list) else str(made)
            default = f"`{default}`"
        elif field.default is None:
            default = "unset"
        else:
            default = f"`{field.default}`"
        rows.append(f"| `{env}` | {default} | {field.description or ''} |")
    return "\n".join(rows)
