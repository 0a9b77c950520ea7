"""Tests for outreach.db: engines, migrations (no drift), sessions, registry mirror, concurrency."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace as NS
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from outreach import db, records
from outreach.errors import DatabaseError, RegistryError
from outreach.models import Base, Broadcast, Campaign, Handout, Market, MarketVillage, Township, Village

NOW = datetime(2024, 5, 3, 1, 0, tzinfo=timezone.utc)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def registry(**changes):
    base = dict(
        townships=[NS(id="t1", name="城关镇"), NS(id="t2", name="河口乡")],
        villages=[
            NS(id="v1", name="东村", township_id="t1", population=800, speaker="networked"),
            NS(id="v2", name="西村", township_id="t1", population=600, speaker="offline"),
            NS(id="v3", name="河口村", township_id="t2", population=900, speaker="networked"),
        ],
        markets=[NS(id="m1", name="城关集", villages={"v1", "v2"})],
        campaigns=[NS(id="c1", name="反诈", start=date(2024, 5, 1), end=date(2024, 5, 31), priority=5)],
    )
    base.update(changes)
    return base


@pytest.fixture
def engine(database_url):
    eng = db.make_engine(database_url)
    db.upgrade(eng)
    yield eng
    eng.dispose()


def _diff(engine, metadata=Base.metadata):
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(tmp_path):
    eng = db.make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with eng.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    eng.dispose()


def test_postgres_urls_use_psycopg_and_pre_ping(database_url):
    if database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL only")
    eng = db.make_engine(database_url.replace("postgresql+psycopg://", "postgresql://"))
    assert eng.dialect.driver == "psycopg"
    assert eng.pool._pre_ping  # noqa: SLF001  (no public accessor)
    eng.dispose()


@pytest.mark.parametrize("url, expected", [
    pytest.param("not a url", "'not a url' 无效；应写成 sqlite:///", id="garbage"),
    pytest.param("postgresql//u:s3cret@host/x", "'postgresql//u:***@host/x' 无效", id="garbage-password"),
    pytest.param("mysql://u:pw@localhost/x", "不支持 mysql", id="unsupported-backend"),
    pytest.param("postgresql+psycopg://u:s3cret@127.0.0.1:1/x", "请检查数据库服务器是否在运行", id="unreachable"),
])
def test_make_engine_errors_name_the_url_hide_the_password_and_say_the_fix(url, expected):
    with pytest.raises(DatabaseError) as err:
        db.make_engine(url)
    message = str(err.value)
    assert expected in message
    assert "s3cret" not in message and "pw@" not in message
    if "127.0.0.1:1" in url:
        assert "u:***@127.0.0.1:1/x" in message


def test_sqlite_in_a_missing_folder_is_a_database_error(tmp_path):
    with pytest.raises(DatabaseError, match="无法打开数据库 .*；请检查文件夹是否存在、是否可写"):
        db.make_engine(f"sqlite:///{tmp_path / 'nope' / 'x.db'}")


def test_upgrade_is_idempotent_and_reaches_head(engine):
    db.upgrade(engine)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(db.MIGRATIONS_DIR))
    assert db.current_revision(engine) == ScriptDirectory.from_config(cfg).get_current_head()
    assert set(sa.inspect(engine).get_table_names()) >= {
        "township", "village", "market", "market_village", "campaign", "broadcast", "broadcast_script",
        "handout", "import_record", "alembic_version",
    }


def test_migrated_schema_matches_the_models(engine):
    assert _diff(engine) == []


def test_drift_check_would_catch_a_model_change(engine):
    changed = sa.MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["handout"].append_column(sa.Column("extra", sa.Integer))
    assert any(d[0] == "add_column" and d[3].name == "extra" for d in _diff(engine, changed))


def test_concurrent_upgrades_of_a_fresh_database_all_succeed(database_url):
    """Several processes (the scheduler, the web app, a CLI) may start at once on an empty database."""
    code = "import sys; from outreach import db; db.upgrade(db.make_engine(sys.argv[1]))"
    procs = [subprocess.Popen([sys.executable, "-c", code, database_url], stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    eng = db.make_engine(database_url)
    assert _diff(eng) == []
    eng.dispose()


def test_session_commits_on_success_and_rolls_back_on_error(engine):
    with db.session(engine) as s:
        s.add(Township(id="t9", name="A"))
    with pytest.raises(RuntimeError), db.session(engine) as s:
        s.add(Township(id="t8", name="B"))
        s.flush()
        raise RuntimeError("boom")
    with db.session(engine) as s:
        assert s.scalars(sa.select(Township.id)).all() == ["t9"]


def test_datetimes_come_back_timezone_aware_utc(engine):
    local = datetime(2024, 5, 3, 7, 30, tzinfo=SHANGHAI)
    plan = records.BroadcastPlan(date(2024, 5, 3), "morning", "v1", "t1", "c1", ("s1",), local)
    with db.session(engine) as s:
        records.record_planned(s, [plan], now=NOW)
    with db.session(engine) as s:
        row = s.scalars(sa.select(Broadcast)).one()
        assert row.scheduled_at == local
        assert row.scheduled_at.utcoffset() == timedelta(0)
        assert row.scheduled_at.hour == 23  # 07:30 in Shanghai is 23:30 UTC the day before
        assert row.updated_at == NOW and row.updated_at.tzinfo is not None
        raw = s.execute(sa.select(sa.func.min(Broadcast.__table__.c.scheduled_at))).scalar()
        assert raw == local and raw.tzinfo is not None


def test_naive_datetimes_are_refused(engine):
    with pytest.raises((ValueError, sa.exc.StatementError), match="不带时区的时间"), db.session(engine) as s:
        s.add(Handout(market_id="m1", date=date(2024, 5, 3), topics="traffic", natural_key="k",
                      created_at=datetime(2024, 5, 3, 8, 0)))
        s.flush()


def test_sync_registry_upserts_links_and_prunes(engine):
    with db.session(engine) as s:
        db.sync_registry(s, **registry())
    with db.session(engine) as s:
        assert s.scalars(sa.select(Village.id).order_by(Village.id)).all() == ["v1", "v2", "v3"]
        assert set(s.execute(sa.select(MarketVillage.market_id, MarketVillage.village_id)).all()) == {
            ("m1", "v1"), ("m1", "v2")}
        assert s.get(Campaign, "c1").start == date(2024, 5, 1)
    # v2 leaves, v3 moves township, t2 goes away, the market gets a mapping.
    changed = registry(
        townships=[NS(id="t1", name="城关镇（新）")],
        villages=[NS(id="v1", name="东村", township_id="t1", population=850, speaker="networked"),
                  NS(id="v3", name="河口村", township_id="t1", population=900, speaker="networked")],
    )
    with db.session(engine) as s:
        db.sync_registry(s, **changed, market_villages={"m1": {"v3"}})
    with db.session(engine) as s:
        assert s.scalars(sa.select(Township.name)).all() == ["城关镇（新）"]
        assert {v.id: (v.township_id, v.population) for v in s.scalars(sa.select(Village))} == {
            "v1": ("t1", 850), "v3": ("t1", 900)}
        assert s.execute(sa.select(MarketVillage.village_id)).scalars().all() == ["v3"]
        assert s.get(Market, "m1").name == "城关集"


def test_sync_registry_of_an_unchanged_mirror_writes_nothing(engine):
    with db.session(engine) as s:
        db.sync_registry(s, **registry())
    statements: list[str] = []
    listener = lambda conn, cursor, statement, *rest: statements.append(statement.split()[0].upper())  # noqa: E731
    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        with db.session(engine) as s:
            db.sync_registry(s, **registry(), prune=False)
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
    assert not {"INSERT", "UPDATE"} & set(statements), statements


def test_sync_registry_holds_the_mirror_lock_until_commit(engine, database_url):
    """A second sync (its own engine, like another process) waits until the first one commits."""
    other = db.make_engine(database_url)
    order: list[str] = []
    started = threading.Event()

    def second() -> None:
        started.set()
        with db.session(other) as s:
            db.sync_registry(s, **registry())
            order.append("second synced")

    try:
        with db.session(engine) as s:
            db.sync_registry(s, **registry())
            t = threading.Thread(target=second)
            t.start()
            started.wait(5)
            t.join(1.0)  # it cannot get past the lock while this transaction is open
            order.append("first commits")
        t.join(30)
        assert order == ["first commits", "second synced"]
    finally:
        other.dispose()


@pytest.mark.parametrize("changes, message", [
    pytest.param({"villages": [NS(id="v1", name="x", township_id="t7", population=1, speaker="offline")]},
                 "村 'v1'：乡镇 't7' 不在县名录里；请添加这个乡镇", id="unknown-township"),
    pytest.param({"markets": [NS(id="m1", name="集", villages={"v9"})]}, "集市 'm1'：村 'v9' 不在县名录里；请添加这个村", id="unknown-village"),
])
def test_sync_registry_rejects_dangling_ids(engine, changes, message):
    with pytest.raises(RegistryError, match=message), db.session(engine) as s:
        db.sync_registry(s, **registry(**changes))


def test_concurrent_writers_wait_for_each_other(engine, database_url):
    """Two writers (own engines, like two processes) each hold the write lock in turn; none fails."""
    with db.session(engine) as s:
        db.sync_registry(s, **registry())
    per_writer = 40
    failures: list[BaseException] = []
    barrier = threading.Barrier(2)

    def writer(n: int) -> None:
        eng = db.make_engine(database_url)
        try:
            barrier.wait()
            for i in range(per_writer):
                with db.session(eng) as s:
                    records.record_handout(s, market_id="m1", day=date(2024, 5, 3), leaflets=i, people=n,
                                           topics=["traffic"], staff=f"writer{n}", now=NOW)
                    # Read after the write, inside the same transaction, like the importers do.
                    s.scalars(sa.select(sa.func.count()).select_from(Handout)).one()
        except BaseException as e:  # noqa: BLE001  (collected and asserted below)
            failures.append(e)
        finally:
            eng.dispose()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    with db.session(engine) as s:
        assert s.scalars(sa.select(sa.func.count()).select_from(Handout)).one() == 2 * per_writer
