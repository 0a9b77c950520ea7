"""Engine and session factory, schema migrations, and the registry mirror sync; no business rules."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.util.exc import CommandError
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Engine, make_url
from sqlmodel import Session

from outreach.errors import DatabaseError, RegistryError
from outreach.models import Campaign, Market, MarketVillage, Township, Village

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_MS = 10_000
# Any constants will do: they only have to be the same in every outreach process.
_PG_MIGRATION_LOCK = 0x6F757472  # "outr"
_PG_REGISTRY_LOCK = 0x72656769  # "regi"
_URL_HELP = "应写成 sqlite:///path/to/outreach.db 或 postgresql+psycopg://user:password@host:5432/dbname"


def _safe(url: URL | str) -> str:
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    try:
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA synchronous = NORMAL")  # safe with WAL; far fewer fsyncs
    finally:
        cur.close()


def make_engine(url: str) -> Engine:
    """Create an engine for `url` and check that it connects.

    SQLite gets WAL, a 10 s busy timeout and foreign keys on every connection;
    PostgreSQL gets pool pre-ping. `postgresql://` URLs use psycopg 3.

    Raises DatabaseError (password hidden) if the URL is invalid or the
    database cannot be reached.
    """
    try:
        parsed = make_url(url)
    except exc.ArgumentError as e:
        raise DatabaseError(f"数据库地址 {_safe(url)!r} 无效；{_URL_HELP}") from e
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    try:
        if backend == "sqlite":
            engine = sa.create_engine(parsed, connect_args={"check_same_thread": False})
            event.listen(engine, "connect", _sqlite_pragmas)
        elif backend == "postgresql":
            engine = sa.create_engine(parsed, pool_pre_ping=True)
        else:
            raise DatabaseError(f"数据库地址 {_safe(parsed)!r}：不支持 {backend}；{_URL_HELP}")
    except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as e:
        raise DatabaseError(f"数据库地址 {_safe(parsed)!r} 无法使用（{e}）；{_URL_HELP}") from e
    try:
        with engine.connect():
            pass
    except exc.DBAPIError as e:
        engine.dispose()
        reason = str(e.orig).strip().splitlines()[0] if e.orig else str(e)
        if backend == "sqlite":
            fix = "请检查文件夹是否存在、是否可写"
        else:
            fix = "请检查数据库服务器是否在运行，主机、端口、用户名、密码和数据库名是否正确"
        raise DatabaseError(
            f"无法打开数据库 {_safe(parsed)}（{reason}）；{fix}（在 outreach.toml 里设置 database_url，或设置 DATABASE_URL）"
        ) from e
    return engine


def _alembic_config(connection: sa.Connection) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


# alembic's `context` and `op` are process-wide proxies: one migration run per process at a time.
_ALEMBIC_LOCK = threading.Lock()


def open_migrated(url: str) -> Engine:
    """An engine for `url` whose schema is at the newest migration (see make_engine and upgrade)."""
    engine = make_engine(url)
    upgrade(engine)
    return engine


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration; a no-op if it is already there.

    Safe to call from several processes at once: the whole upgrade runs in one
    transaction holding the write lock (SQLite) or an advisory lock (PostgreSQL).

    Raises DatabaseError if the database holds a schema this version does not know.
    """
    try:
        with _ALEMBIC_LOCK, engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                # pysqlite would run DDL outside any transaction; take the write lock now.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
            command.upgrade(_alembic_config(conn), "head")
            conn.commit()
    except CommandError as e:
        raise DatabaseError(
            f"数据库 {_safe(engine.url)} 的表结构这个版本的 outreach 不认识（{e}）；"
            "请把 outreach 升级到最新版本"
        ) from e
    except exc.DBAPIError as e:
        reason = str(e.orig).strip().splitlines()[0] if e.orig else str(e)
        raise DatabaseError(
            f"数据库 {_safe(engine.url)}：升级表结构失败（{reason}）；如果这些表是别的程序建的，"
            "请让 outreach 使用一个空数据库（它会自己建表）"
        ) from e


def current_revision(engine: Engine) -> str | None:
    """The migration revision the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextlib.contextmanager
def session(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error.

    Objects stay readable after the block (no expiry on commit). A database
    that stays locked or unreachable becomes DatabaseError.
    """
    with Session(engine, expire_on_commit=False) as s:
        try:
            yield s
            s.commit()
        except exc.OperationalError as e:
            s.rollback()
            if "locked" in str(e.orig):
                raise DatabaseError(
                    f"数据库 {_safe(engine.url)} 被另一个 outreach 进程锁住超过 "
                    f"{BUSY_TIMEOUT_MS // 1000} 秒；请稍后再试"
                ) from e
            raise DatabaseError(f"数据库 {_safe(engine.url)}：{e.orig}；请检查数据库服务器后再试") from e
        except BaseException:
            s.rollback()
            raise


# --- registry mirror ---------------------------------------------------------------


def _upsert(session: Session, model: Any, rows: list[dict[str, Any]], keys: list[str]) -> None:
    """INSERT ... ON CONFLICT DO UPDATE, for SQLite and PostgreSQL alike."""
    if not rows:
        return
    table = model.__table__
    name = session.get_bind().dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(table)
    others = [c for c in rows[0] if c not in keys]
    if others:
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in others})
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=keys)
    session.execute(stmt, rows)


def _prune(session: Session, model: Any, keep: Iterable[str]) -> None:
    keep = list(keep)
    stmt = sa.delete(model)
    if keep:
        stmt = stmt.where(model.id.not_in(keep))
    session.execute(stmt)


def _lock_mirror(session: Session) -> None:
    """Serialise registry syncs across processes until the session's transaction ends.

    Every `run`, `serve`, `export` and `coverage` mirrors the registry at start-up;
    without a lock two of them interleave their link rewrites and one fails on
    the primary key. PostgreSQL: a transaction-scoped advisory lock. SQLite:
    BEGIN IMMEDIATE takes the write lock now (waiting up to the busy timeout),
    so the sync never starts on a snapshot another writer has moved past.
    """
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_REGISTRY_LOCK)))
    elif conn.dialect.name == "sqlite":
        raw = conn.connection.dbapi_connection
        if raw is not None and not raw.in_transaction:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def _changed(session: Session, model: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows (keyed by their first column, `id`) that differ from the table or are missing from it.

    An unchanged mirror then writes nothing, so routine start-ups hold the lock only briefly.
    """
    if not rows:
        return []
    stored = {r[0]: tuple(r) for r in session.execute(sa.select(*(getattr(model, c) for c in rows[0])))}
    return [r for r in rows if stored.get(next(iter(r.values()))) != tuple(r.values())]


def _checked_links(townships: list[Any], villages: list[Any], markets: list[Any],
                   market_villages: Mapping[str, Iterable[str]] | None) -> set[tuple[str, str]]:
    """The (market, village) links of the registry given; RegistryError for an id it does not have."""
    t_ids = {t.id for t in townships}
    v_ids = {v.id for v in villages}
    for v in villages:
        if v.township_id not in t_ids:
            raise RegistryError(f"村 '{v.id}'：乡镇 '{v.township_id}' 不在县名录里；请添加这个乡镇，或改正该村的乡镇")
    links: set[tuple[str, str]] = set()
    for m in markets:
        served = market_villages.get(m.id, ()) if market_villages is not None else getattr(m, "villages", ())
        for vid in sorted(set(served)):
            if vid not in v_ids:
                raise RegistryError(f"集市 '{m.id}'：村 '{vid}' 不在县名录里；请添加这个村，或改正该集市的村")
            links.add((m.id, vid))
    return links


def _upsert_mirror(session: Session, townships: list[Any], villages: list[Any], markets: list[Any],
                   campaigns: list[Any]) -> None:
    """Write the changed rows of the four mirror tables, parents before children."""
    _upsert(session, Township, _changed(session, Township, [{"id": t.id, "name": t.name} for t in townships]), ["id"])
    _upsert(session, Village, _changed(session, Village, [
        {"id": v.id, "name": v.name, "township_id": v.township_id,
         "population": int(v.population), "speaker": str(v.speaker)}
        for v in villages
    ]), ["id"])
    _upsert(session, Market, _changed(session, Market, [{"id": m.id, "name": m.name} for m in markets]), ["id"])
    _upsert(session, Campaign, _changed(session, Campaign, [
        {"id": c.id, "name": c.name, "start": c.start, "end": c.end, "priority": int(c.priority)}
        for c in campaigns
    ]), ["id"])


def sync_registry(
    session: Session,
    *,
    townships: Iterable[Any],
    villages: Iterable[Any],
    markets: Iterable[Any],
    campaigns: Iterable[Any],
    market_villages: Mapping[str, Iterable[str]] | None = None,
    prune: bool = True,
) -> None:
    """Make the mirror tables equal to the registry given (duck-typed objects).

    Townships have `id, name`; villages `id, name, township_id, population,
    speaker`; markets `id, name` and, unless `market_villages` maps market id to
    village ids, a `villages` attribute; campaigns `id, name, start, end,
    priority`. With `prune` (the default) rows no longer in the registry are
    deleted; the broadcast and handout logs are never touched.

    Safe when many processes sync one database at once: the sync holds a lock
    (see `_lock_mirror`) until the session commits, writes only what changed,
    and upserts links: however many run together, each sees the one before it
    committed and none fails on a duplicate link.

    Raises RegistryError if a village or market refers to an unknown id.
    """
    townships, villages, markets, campaigns = list(townships), list(villages), list(markets), list(campaigns)
    links = _checked_links(townships, villages, markets, market_villages)

    _lock_mirror(session)
    # Stale links go first and new ones come last; parents are upserted before
    # their children and pruned after them, so foreign keys hold at every step.
    stored_links = {(m, v) for m, v in session.execute(sa.select(MarketVillage.market_id, MarketVillage.village_id))}
    stale = stored_links - links
    if stale:
        session.execute(sa.delete(MarketVillage).where(
            sa.tuple_(MarketVillage.market_id, MarketVillage.village_id).in_(sorted(stale))))
    _upsert_mirror(session, townships, villages, markets, campaigns)
    if prune:
        _prune(session, Market, [m.id for m in markets])
        _prune(session, Village, {v.id for v in villages})
        _prune(session, Township, {t.id for t in townships})
        _prune(session, Campaign, [c.id for c in campaigns])
    new_links = sorted(links - stored_links)
    if new_links:
        _upsert(session, MarketVillage, [{"market_id": m, "village_id": v} for m, v in new_links],
                ["market_id", "village_id"])
