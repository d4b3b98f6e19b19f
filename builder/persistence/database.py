"""The database handle: an async engine on psycopg 3, its sessions and transactions.

:class:`Database` is what every persistence service takes first. It owns a pooled
:class:`~sqlalchemy.ext.asyncio.AsyncEngine` configured from settings (pool size,
overflow, recycle, pre-ping, a connect timeout and a server-side statement timeout),
runs work in one transaction with :meth:`Database.run` (retrying transient errors
around the whole transaction), and turns driver errors into builder's error tree in
one place (:func:`translate_errors`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from builder.errors import (
    AlreadyExists,
    BuilderError,
    Conflict,
    DependencyUnavailable,
    InvalidInput,
    NotFound,
    OperationTimeout,
)
from builder.log import get_logger
from builder.retry import async_db_attempts, is_transient_db_error
from builder.settings import Settings, get_settings, normalize_database_url

if TYPE_CHECKING:
    from builder.cache import Cache

__all__ = ["Database", "connect_args", "plain_dsn", "translate_errors"]

T = TypeVar("T")
_log = get_logger("builder.persistence")

# Table → the noun NotFound reports when a foreign key points at a missing row.
_RESOURCES = {
    "users": "user",
    "projects": "project",
    "messages": "message",
    "snapshots": "snapshot",
    "blobs": "blob",
}
# Attempts given up at their deadline, kept referenced while they unwind.
_abandoned: set[asyncio.Future[Any]] = set()


def _forget(attempt: asyncio.Future[Any]) -> None:
    _abandoned.discard(attempt)
    if not attempt.cancelled():
        attempt.exception()  # retrieved: an abandoned attempt's failure is not news


_DETAIL_VALUE = re.compile(r"=\((?P<value>[^)]*)\)")
_DETAIL_TABLE = re.compile(r'table "(?P<table>[^"]+)"')


def plain_dsn(url: str) -> str:
    """The libpq/psycopg form (``postgresql://``) of a SQLAlchemy PostgreSQL URL."""
    parsed = make_url(normalize_database_url(url))
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def connect_args(settings: Settings, *, statement_timeout: bool = True) -> dict[str, Any]:
    """psycopg connection arguments: connect timeout and server-side statement timeout."""
    args: dict[str, Any] = {"connect_timeout": max(1, round(settings.timeout_db))}
    if statement_timeout:
        args["options"] = f"-c statement_timeout={round(settings.timeout_db * 1000)}"
    return args


class Database:
    """A PostgreSQL database: pooled async engine, sessions, transactions.

    Args:
        url: A PostgreSQL URL in any form ``Settings`` accepts (``postgres://``,
            ``postgresql://``, ``postgresql+psycopg://``).
        settings: Pool sizes and timeouts; defaults to :func:`get_settings`.
        cache: A cache the services read through and invalidate on every write; None
            means no caching.

    Example::

        db = Database.from_settings(get_settings())
        project = await create_project(db, user_id=user.id, name="Bakery")
        await db.dispose()
    """

    def __init__(
        self, url: str, *, settings: Settings | None = None, cache: Cache | None = None
    ) -> None:
        self.settings = settings or get_settings()
        self.url = normalize_database_url(url)
        self.cache = cache
        self.engine: AsyncEngine = create_async_engine(
            self.url,
            pool_size=self.settings.db_pool_size,
            max_overflow=self.settings.db_max_overflow,
            pool_recycle=self.settings.db_pool_recycle,
            # No ping before each checkout (a round trip on every transaction): a
            # connection that died with the server fails its first statement, which
            # invalidates the pool, and run() retries the work on a new connection.
            pool_pre_ping=False,
            connect_args=connect_args(self.settings),
        )
        self.sessions: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )
        # For work that is one statement: no BEGIN and COMMIT around it, the server
        # commits the statement itself (one round trip instead of three).
        self._statements: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
        )

    @classmethod
    def from_settings(cls, settings: Settings | None = None, *, cached: bool = True) -> Database:
        """The database the settings name, or the embedded one when none is configured.

        Starting the embedded server blocks for up to a few seconds the first time.

        Args:
            settings: Defaults to :func:`get_settings`.
            cached: Attach a :class:`~builder.cache.Cache` built from the same settings.

        Raises:
            DependencyUnavailable: The embedded server could not be started.
        """
        settings = settings or get_settings()
        url = settings.database_url
        if url is None:
            from builder.persistence.embedded import start_embedded

            url = start_embedded(settings.data_dir / "postgres")
        cache = None
        if cached:
            from builder.cache import Cache

            cache = Cache.from_settings(settings)
        return cls(url, settings=settings, cache=cache)

    @property
    def psycopg_url(self) -> str:
        """The plain ``postgresql://`` DSN, for code that uses psycopg directly."""
        return plain_dsn(self.url)

    sync_url = psycopg_url

    @property
    def safe_url(self) -> str:
        """The URL with its password masked, for messages and logs."""
        return make_url(self.url).render_as_string(hide_password=True)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on exit, rolled back on error.

        Errors are translated (:func:`translate_errors`) but not retried; use
        :meth:`run` for work that should be retried on transient failures.
        """
        with translate_errors(self):
            async with self.sessions() as session, session.begin():
                yield session

    async def run(
        self,
        work: Callable[[AsyncSession], Awaitable[T]],
        *,
        seconds: float | None = None,
        single_statement: bool = False,
    ) -> T:
        """Run ``work`` in one transaction, retrying the whole of it on transient errors.

        The whole call — connecting, every retry, the commit — ends within one budget
        (``timeout_db`` unless ``seconds`` is given): the statement timeout stops a slow
        statement on the server, and this deadline stops the caller's wait when the
        server does not answer at all (frozen, or a network that drops packets). The
        abandoned attempt is cancelled and unwinds in the background, so a server that
        never answers cannot hold the caller while its connection is given up.

        Args:
            work: Called with a session in an open transaction; may be called again
                (with a new transaction) after a serialization failure, a deadlock or a
                lost connection, so it must not have effects outside the database.
            seconds: The budget of this call; defaults to ``settings.timeout_db``.
            single_statement: ``work`` runs one statement, which the server commits on
                its own (autocommit): no round trips for ``BEGIN`` and ``COMMIT``.

        Returns:
            What ``work`` returns, after the commit.

        Raises:
            NotFound, AlreadyExists, Conflict, InvalidInput, OperationTimeout,
            DependencyUnavailable: translated from the driver's errors.
        """
        budget = self.settings.timeout_db if seconds is None else seconds
        attempt = asyncio.ensure_future(self._attempts(work, single_statement))
        try:
            done, _ = await asyncio.wait({attempt}, timeout=budget)
        except asyncio.CancelledError:
            attempt.cancel()
            raise
        if not done:
            attempt.cancel()
            _abandoned.add(attempt)
            attempt.add_done_callback(_forget)
            raise OperationTimeout(operation="db", seconds=budget)
        return attempt.result()

    async def _attempts(
        self, work: Callable[[AsyncSession], Awaitable[T]], single_statement: bool = False
    ) -> T:
        with translate_errors(self):
            async for attempt in async_db_attempts():
                with attempt:
                    if single_statement:
                        async with self._statements() as session:
                            return await work(session)
                    async with self.sessions() as session, session.begin():
                        return await work(session)
        raise AssertionError("unreachable: the retry policy re-raises")  # pragma: no cover

    async def ping(self, *, seconds: float | None = None) -> None:
        """Check the server answers (within ``seconds``; default ``timeout_db``).

        Raises:
            DependencyUnavailable: It does not.
            OperationTimeout: It did not answer in time.
        """

        async def select_one(session: AsyncSession) -> None:
            await session.execute(text("SELECT 1"))

        await self.run(select_one, seconds=seconds)

    async def dispose(self) -> None:
        """Close every pooled connection (and the cache's, when there is one)."""
        await self.engine.dispose()
        if self.cache is not None:
            await self.cache.aclose()

    def __repr__(self) -> str:
        return f"Database({self.safe_url!r})"


@contextmanager
def translate_errors(db: Database | None = None) -> Iterator[None]:
    """Turn driver errors into builder's error tree.

    * unique violation → :class:`AlreadyExists`; foreign key to a missing row →
      :class:`NotFound`; a row still referenced → :class:`Conflict`;
    * check, not-null and malformed values → :class:`InvalidInput`;
    * statement timeout → :class:`OperationTimeout`; serialization failure or deadlock
      that outlived its retries → :class:`Conflict`;
    * the server unreachable → :class:`DependencyUnavailable`.
    """
    try:
        yield
    except BuilderError:
        raise
    except DBAPIError as exc:
        translated = _translate(exc, db)
        if translated is None:
            raise  # a bug (bad SQL, wrong type), not a condition callers handle
        raise translated from exc


def _translate(exc: DBAPIError, db: Database | None) -> BuilderError | None:
    orig = exc.orig
    state: str | None = getattr(orig, "sqlstate", None)
    diag = getattr(orig, "diag", None)
    detail = str(getattr(diag, "message_detail", None) or "")
    constraint = getattr(diag, "constraint_name", None)
    table = getattr(diag, "table_name", None)
    if isinstance(exc, IntegrityError) or (state or "").startswith("23"):
        if state == "23505":
            return AlreadyExists(
                f"{table or 'row'} already exists: {detail}".rstrip(": "),
                constraint=constraint,
                table=table,
            )
        if state == "23503":
            if "is not present" in detail:
                match = _DETAIL_TABLE.search(detail)
                referred = match["table"] if match else "row"
                value = _DETAIL_VALUE.search(detail)
                return NotFound(_RESOURCES.get(referred, referred), value["value"] if value else "")
            return Conflict(
                f"{table or 'row'} is still referenced: {detail}", constraint=constraint
            )
        return InvalidInput(
            f"{table or 'row'} violates {constraint or 'a constraint'}: {_first_line(orig)}",
            constraint=constraint,
            table=table,
        )
    if state is not None and state.startswith("22"):
        return InvalidInput(f"invalid value: {_first_line(orig)}")
    if state == "57014":
        seconds = db.settings.timeout_db if db is not None else 0.0
        return OperationTimeout("db", seconds)
    if state in {"40001", "40P01"}:
        return Conflict(f"concurrent update, try again: {_first_line(orig)}")
    if is_transient_db_error(exc):
        where = db.safe_url if db is not None else "the database"
        _log.error("db.unavailable", url=where, error=_first_line(orig))
        return DependencyUnavailable(
            "postgresql", f"cannot reach PostgreSQL at {where}: {_first_line(orig)}"
        )
    return None


def _first_line(error: BaseException | None) -> str:
    return str(error).strip().splitlines()[0] if error is not None and str(error) else ""
