"""Opening a store: URL checks, SQLite pragmas, sessions, and Alembic migrations applied on open."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from store.errors import StoreError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 60_000


def default_url(workdir: str | os.PathLike[str]) -> str:
    """The embedded default: a SQLite file in the work directory."""
    return f"sqlite:///{Path(workdir).expanduser().resolve() / 'store.db'}"


def display_url(url: str | URL) -> str:
    """A URL safe to print: the password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return str(url)


@dataclass
class Store:
    """An open QA store: an engine plus sessions that commit on success and roll back on error."""

    url: URL
    engine: Engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work; for SQLite the write lock is taken only when the first write happens."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A unit of work that writes: on SQLite it takes the write lock up front (BEGIN IMMEDIATE) so
        concurrent writers queue on the busy timeout instead of failing with "database is locked"."""
        bind = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        with Session(bind, expire_on_commit=False) as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()

    def __str__(self) -> str:
        return display_url(self.url)


def _parse_url(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError:
        raise StoreError(
            f"'{url}' is not a database URL: pass a SQLAlchemy URL such as "
            "sqlite:///path/to/store.db or postgresql+psycopg://user:password@host/dbname."
        ) from None


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:  # type: ignore[no-untyped-def]
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def _read_only(engine: Engine, backend: str) -> None:
    """Every connection of `engine` refuses writes: SQLite's query_only, PostgreSQL's read-only
    transactions."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        if backend == "sqlite":
            cursor.execute("PRAGMA query_only = ON")
        else:
            cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            dbapi_connection.commit()
        cursor.close()


def sqlite_file(url: URL) -> Path | None:
    """The file of a SQLite store URL (None for an in-memory database or another backend)."""
    database = url.database or ""
    if (
        url.get_backend_name() != "sqlite"
        or database in ("", ":memory:")
        or database.startswith("file::memory:")
    ):
        return None
    # a URI filename (sqlite:///file:PATH?mode=ro&uri=true) names the file after 'file:'
    uri = str(url.query.get("uri", "")).lower() == "true" and database.startswith("file:")
    return Path(database.removeprefix("file:") if uri else database).expanduser()


def create_store_engine(url: str, *, create: bool = True) -> tuple[URL, Engine]:
    """Build an engine for `url`; for SQLite, check (or create) the file's folder first."""
    parsed = _parse_url(url)
    kwargs: dict[str, object] = {}
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_file(parsed)
        if path is None:
            kwargs["poolclass"] = StaticPool
            kwargs["connect_args"] = {"check_same_thread": False}
        else:
            if not path.exists():
                if not create:
                    raise StoreError(
                        f"No store at {path}: pass --db with the URL of an existing store, "
                        "or create one with `videozero db upgrade --db URL` or `videozero iterate`."
                    )
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreError(
                        f"Cannot create the folder for the store {path}: {exc.strerror}."
                    ) from None
            elif path.is_dir():
                raise StoreError(f"The store path {path} is a folder: give the path of a .db file.")
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    elif parsed.get_backend_name() == "postgresql":
        kwargs["pool_pre_ping"] = True
        kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        engine = create_engine(parsed, **kwargs)
    except NoSuchModuleError:
        raise StoreError(
            f"No database driver for '{parsed.drivername}': use sqlite:///PATH, or "
            "postgresql+psycopg://... after `pip install 'videozero[postgres]'`."
        ) from None
    except ModuleNotFoundError as exc:
        raise StoreError(
            f"The database driver for '{parsed.drivername}' is not installed ({exc.name}): "
            "for PostgreSQL run `pip install 'videozero[postgres]'`."
        ) from None
    if parsed.get_backend_name() == "sqlite":
        _sqlite_pragmas(engine)
    return parsed, engine


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    """The newest schema revision this version of videozero knows."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The schema revision a database is at (None for an empty database)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to `revision`, serialised against other processes doing the same."""
    cfg = _alembic_config()
    with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)
        connection.commit()


def _connection_error(url: URL, exc: Exception) -> StoreError:
    orig = getattr(exc, "orig", None) or exc
    reason = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    if url.get_backend_name() == "sqlite":
        return StoreError(
            f"Cannot open the SQLite store {url.database}: {reason}. Check the path is a videozero "
            "store and readable."
        )
    return StoreError(
        f"Cannot connect to the database at {display_url(url)}: {reason}. Check the server is running "
        "and the URL, user and password are right."
    )


def open_store(url: str, *, create: bool = True, migrate: bool = True) -> Store:
    """Open (and by default create and migrate to the newest schema) the store at `url`."""
    parsed, engine = create_store_engine(url, create=create)
    return _opened(parsed, engine, migrate)


def open_read_only(url: str) -> Store:
    """Open an existing store at the newest schema for reading: its connections refuse every write, so
    a reader (the browser) can never change what a run stored."""
    parsed, engine = create_store_engine(url, create=False)
    _read_only(engine, parsed.get_backend_name())
    store = _opened(parsed, engine, migrate=False)
    try:
        at = current_revision(engine)
    except (OperationalError, DatabaseError) as exc:
        engine.dispose()
        raise _connection_error(parsed, exc) from None
    if at != head_revision():
        engine.dispose()
        raise StoreError(
            f"The store at {display_url(parsed)} is at schema revision {at}, not {head_revision()}: "
            "run `videozero db upgrade --db URL` first (or upgrade videozero if it is newer)."
        )
    return store


def _opened(parsed: URL, engine: Engine, migrate: bool) -> Store:
    try:
        at = current_revision(engine)
        if migrate and at != head_revision():
            if at is not None and at not in _known_revisions():
                raise StoreError(
                    f"The store at {display_url(parsed)} has schema revision {at}, which this version of "
                    "videozero does not know: upgrade videozero."
                )
            upgrade(engine)
        elif not migrate and at is None:
            raise StoreError(
                f"The database at {display_url(parsed)} holds no videozero store: run "
                "`videozero db upgrade --db URL` first."
            )
    except (OperationalError, DatabaseError) as exc:
        engine.dispose()
        raise _connection_error(parsed, exc) from None
    except CommandError as exc:
        engine.dispose()
        raise StoreError(f"Cannot migrate the store at {display_url(parsed)}: {exc}.") from None
    except StoreError:
        engine.dispose()
        raise
    return Store(url=parsed, engine=engine)


def _known_revisions() -> set[str]:
    return {rev.revision for rev in ScriptDirectory.from_config(_alembic_config()).walk_revisions()}
