"""Benchmark: coverage queries on a generated county with 5,000,000 broadcast rows (SQLite).

Generates (once, cached under benchmarks/out/) a year of morning/evening slots
for ~1,000 villages and several campaigns, then times the coverage queries
against a baseline that loads rows through the ORM and aggregates in Python.

    .venv/bin/python benchmarks/coverage.py              # generate if needed, then time
    .venv/bin/python benchmarks/coverage.py --regen      # throw the cached database away first
    .venv/bin/python benchmarks/coverage.py --rows 500000 --sample 100000
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sqlite3
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from outreach import coverage as cov  # noqa: E402
from outreach.db import make_engine, session, upgrade  # noqa: E402
from outreach.models import Broadcast  # noqa: E402

GENERATOR_VERSION = 2  # bump when the generated data changes shape (2: evidence and aired_at)
FIRST_DAY = dt.date(2025, 6, 1)
DAYS = 365
TODAY = dt.date(2026, 5, 20)  # the last 11 generated days are still planned
N_TOWNSHIPS = 20
VILLAGES_PER_TOWNSHIP = 50
N_MARKETS = 15
SLOTS = (("morning", "22:30:00"), ("evening", "11:00:00"))  # 06:30 and 19:00 Beijing time, in UTC
# (campaign id, name, first day offset, last day offset, share of townships targeted, scripts)
CAMPAIGNS = [
    ("anti-fraud", "反诈宣传", 0, 364, 1.0, 9),
    ("traffic", "交通安全", 0, 364, 1.0, 6),
    ("drowning", "防溺水", 0, 364, 1.0, 4),
    ("fire", "森林防火", 0, 364, 1.0, 4),
    ("pension-scam", "养老防骗", 0, 364, 1.0, 5),
    ("drug", "禁毒宣传", 0, 364, 1.0, 3),
    ("harvest", "三夏安全", 0, 364, 0.5, 3),
    ("election", "换届宣传", 237, 364, 1.0, 2),  # sized so that the year holds just over 5,000,000 rows
]


# --- generation -----------------------------------------------------------------------


def _db_path(out_dir: Path, rows: int) -> Path:
    return out_dir / f"coverage-{rows}-v{GENERATOR_VERSION}.db"


def _villages() -> list[tuple[str, str, str, int, str]]:
    rnd = random.Random(1)
    out = []
    for t in range(N_TOWNSHIPS):
        for v in range(VILLAGES_PER_TOWNSHIP):
            speaker = "offline" if rnd.random() < 0.2 else "networked"
            out.append((f"t{t:02d}-{v:02d}", f"第{t + 1}乡{v + 1}村", f"t{t:02d}", rnd.randint(300, 4000), speaker))
    return out


def _broadcast_rows(limit: int) -> Iterator[tuple[Any, ...]]:
    """Broadcast rows in (date, slot, village, campaign) order, with BroadcastScript rows interleaved.

    Yields ("b", row) and ("s", row) tuples; ids are assigned here so both tables fill in one pass.
    """
    rnd = random.Random(42)
    villages = _villages()
    bid = 0
    for d in range(DAYS):
        day = FIRST_DAY + dt.timedelta(days=d)
        iso = day.isoformat()
        past = day < TODAY
        for slot, utc_time in SLOTS:
            stamp = f"{(day - dt.timedelta(days=1)).isoformat() if slot == 'morning' else iso} {utc_time}.000000"
            for vid, _name, tid, _pop, speaker in villages:
                t_index = int(tid[1:])
                for ci, (cid, _n, first, last, share, n_scripts) in enumerate(CAMPAIGNS):
                    if not first <= d <= last or t_index >= share * N_TOWNSHIPS:
                        continue
                    bid += 1
                    if bid > limit:
                        return
                    played_at = exported_at = confirmed_at = None
                    if not past:
                        status = "planned"
                    elif speaker == "offline":
                        status = "confirmed" if rnd.random() < 0.85 else "exported"
                        exported_at = stamp
                        confirmed_at = stamp if status == "confirmed" else None
                    else:
                        r = rnd.random()
                        status = "played" if r < 0.92 else "missed" if r < 0.97 else "failed"
                        played_at = stamp if status == "played" else None
                    first_script = (d * 2 + ci + t_index) % n_scripts
                    scripts = [f"{cid}-{first_script}"]
                    if n_scripts > 1 and rnd.random() < 0.5:
                        scripts.append(f"{cid}-{(first_script + 1) % n_scripts}")
                    evidence = {"played": "player", "confirmed": "confirmed", "exported": "exported"}.get(status, "none")
                    yield "b", (bid, iso, slot, vid, tid, cid, ",".join(scripts), status, stamp, played_at,
                                exported_at, confirmed_at, stamp, evidence, played_at or confirmed_at)
                    for pos, sid in enumerate(scripts):
                        yield "s", (bid, pos, sid)


def generate(path: Path, rows: int) -> None:
    """Create the schema through the project's migrations, then bulk-load with sqlite3 directly."""
    t0 = time.perf_counter()
    tmp = path.with_suffix(".tmp")
    for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        p.unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{tmp}")
    upgrade(engine)
    engine.dispose()

    con = sqlite3.connect(tmp, isolation_level=None)
    con.execute("PRAGMA journal_mode = OFF")
    con.execute("PRAGMA synchronous = OFF")
    con.execute("PRAGMA cache_size = -400000")
    # Secondary indexes are dropped for the load and rebuilt afterwards: far faster than updating them per row.
    indexes = con.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        "AND tbl_name IN ('broadcast', 'broadcast_script')"
    ).fetchall()
    con.execute("BEGIN")
    for name, _sql in indexes:
        con.execute(f'DROP INDEX "{name}"')
    villages = _villages()
    townships = sorted({v[2] for v in villages})
    con.executemany("INSERT INTO township (id, name) VALUES (?, ?)", [(t, f"第{int(t[1:]) + 1}乡") for t in townships])
    con.executemany("INSERT INTO village (id, name, township_id, population, speaker) VALUES (?, ?, ?, ?, ?)",
                    villages)
    markets = [(f"m{i:02d}", f"第{i + 1}集") for i in range(N_MARKETS)]
    con.executemany("INSERT INTO market (id, name) VALUES (?, ?)", markets)
    con.executemany("INSERT INTO market_village (market_id, village_id) VALUES (?, ?)",
                    [(m, v[0]) for i, (m, _) in enumerate(markets) for v in villages if int(v[2][1:]) % N_MARKETS == i])
    con.executemany('INSERT INTO campaign (id, name, start, "end", priority) VALUES (?, ?, ?, ?, ?)', [
        (c[0], c[1], (FIRST_DAY + dt.timedelta(days=c[2])).isoformat(),
         (FIRST_DAY + dt.timedelta(days=c[3])).isoformat(), 5) for c in CAMPAIGNS])
    rnd = random.Random(7)
    handouts = []
    for i, (mid, _name) in enumerate(markets):
        for d in range(i % 5, DAYS, 5):  # one market day in five
            day = FIRST_DAY + dt.timedelta(days=d)
            if day < TODAY:
                handouts.append((mid, day.isoformat(), rnd.randint(50, 400), rnd.randint(30, 300), "anti_fraud",
                                 "", "", f"{mid}-{d}", f"{day.isoformat()} 04:00:00.000000"))
    con.executemany("INSERT INTO handout (market_id, date, leaflets, people, topics, staff, note, natural_key, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", handouts)

    b_sql = ("INSERT INTO broadcast (id, date, slot, village_id, township_id, campaign_id, script_ids, status, "
             "scheduled_at, played_at, exported_at, confirmed_at, updated_at, evidence, aired_at) VALUES "
             "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
    s_sql = "INSERT INTO broadcast_script (broadcast_id, position, script_id) VALUES (?, ?, ?)"
    b_batch: list[tuple[Any, ...]] = []
    s_batch: list[tuple[Any, ...]] = []
    done = 0
    for kind, row in _broadcast_rows(rows):
        (b_batch if kind == "b" else s_batch).append(row)
        if len(b_batch) >= 200_000:
            con.executemany(b_sql, b_batch)
            con.executemany(s_sql, s_batch)
            done += len(b_batch)
            b_batch, s_batch = [], []
            print(f"\r  inserted {done:,} broadcast rows ({time.perf_counter() - t0:.0f} s)", end="", flush=True)
    con.executemany(b_sql, b_batch)
    con.executemany(s_sql, s_batch)
    done += len(b_batch)
    print(f"\r  inserted {done:,} broadcast rows ({time.perf_counter() - t0:.0f} s); building indexes", flush=True)
    for _name, sql in indexes:
        con.execute(sql)
    con.execute("COMMIT")
    con.execute("ANALYZE")
    con.close()
    tmp.rename(path)
    print(f"  generated {path.name} in {time.perf_counter() - t0:.0f} s ({path.stat().st_size / 1e9:.2f} GB)")


# --- timing ---------------------------------------------------------------------------


def _time(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """Best of `repeat` runs (the first also warms the page cache)."""
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


def orm_baseline(engine: sa.Engine, *, campaign_id: str | None, start: dt.date, end: dt.date,
                 sample: int) -> tuple[float, int, int]:
    """Load up to `sample` matching rows as ORM objects and count statuses per village in Python.

    Returns (seconds, rows loaded, rows matching in total) so the caller can extrapolate.
    """
    where = [Broadcast.date >= start, Broadcast.date <= end]
    if campaign_id is not None:
        where.append(Broadcast.campaign_id == campaign_id)
    with session(engine) as s:
        total = s.exec(sa.select(sa.func.count()).select_from(Broadcast).where(*where)).one()[0]
    with session(engine) as s:
        t = time.perf_counter()
        counts: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: defaultdict(int))
        loaded = 0
        for b in s.exec(sa.select(Broadcast).where(*where).limit(sample)).scalars():
            c = counts[(b.campaign_id, b.village_id)]
            c[str(b.status)] += 1
            if str(b.status) in cov.REACHED and (c["last"] == 0 or b.date > c["last"]):
                c["last"] = b.date
            loaded += 1
        elapsed = time.perf_counter() - t
    return elapsed, loaded, int(total)


def run(path: Path, sample: int) -> None:
    engine = make_engine(f"sqlite:///{path}")
    with session(engine) as s:
        n_rows = s.exec(sa.select(sa.func.count()).select_from(Broadcast)).one()[0]
        targets = [r[0] for r in s.exec(sa.text("SELECT id FROM village"))]
    print(f"database: {path} ({n_rows:,} broadcast rows, {len(targets)} villages, {len(CAMPAIGNS)} campaigns)")
    month = (TODAY.replace(day=1), TODAY)
    year = (FIRST_DAY, FIRST_DAY + dt.timedelta(days=DAYS - 1))

    def coverage(campaign: str | None, period: tuple[dt.date, dt.date]) -> Callable[[], Any]:
        def go() -> Any:
            with session(engine) as s:
                rows = cov.village_coverage(s, start=period[0], end=period[1], campaign_id=campaign,
                                            target_village_ids=targets if campaign else ())
                return rows, cov.township_rollup(rows)
        return go

    def other(fn: Callable[..., Any], **kw: Any) -> Callable[[], Any]:
        def go() -> Any:
            with session(engine) as s:
                return fn(s, **kw)
        return go

    cases = [
        ("coverage report query: anti-fraud, this month, 1,000 target villages", "anti-fraud", month),
        ("coverage: anti-fraud, whole year", "anti-fraud", year),
        ("coverage: every campaign, this month", None, month),
        ("coverage: every campaign, whole year (all rows)", None, year),
    ]
    print("\nSQL aggregates (best of 3):")
    sql_times = {}
    for label, campaign, period in cases:
        secs, (rows, towns) = _time(coverage(campaign, period))
        sql_times[label] = secs
        print(f"  {secs:7.3f} s  {label}  -> {len(rows)} village rows, {len(towns)} townships")
    for label, fn, kw in [
        ("village gaps (7 days)", cov.village_gaps,
         {"campaign_id": "anti-fraud", "today": TODAY, "days": 7, "target_village_ids": targets}),
        ("script gaps (whole history)", cov.script_gaps,
         {"campaign_id": "anti-fraud", "script_ids": [f"anti-fraud-{i}" for i in range(10)],
          "target_village_ids": targets}),
        ("scripts aired per township, this month", cov.scripts_aired,
         {"start": month[0], "end": month[1], "campaign_id": "anti-fraud"}),
        ("unconfirmed exports", cov.unconfirmed_exports, {"today": TODAY, "campaign_id": "anti-fraud"}),
        ("village x day heatmap, this month", cov.village_day_matrix,
         {"campaign_id": "anti-fraud", "start": month[0], "end": month[1], "target_village_ids": targets}),
        ("markets, whole year", cov.market_coverage, {"start": year[0], "end": year[1]}),
    ]:
        secs, result = _time(other(fn, **kw))
        size = len(result.rows) if isinstance(result, cov.Heatmap) else len(result)
        print(f"  {secs:7.3f} s  {label}  -> {size} rows")

    def whole_report() -> str:
        from outreach.coverage import report

        with session(engine) as s:
            data = report.collect(s, campaign_id="anti-fraud", start=month[0], end=month[1], today=TODAY,
                                  target_village_ids=targets, script_ids=[f"anti-fraud-{i}" for i in range(9)])
        return report.render_html(data, generated_at="benchmark", font=report.cjk_font())

    secs, page = _time(whole_report, repeat=1)
    (path.parent / "report.html").write_text(page, encoding="utf-8")
    print(f"  {secs:7.3f} s  whole HTML report, this month (every query + 3 charts) -> "
          f"{len(page) / 1e6:.1f} MB, written to {path.parent / 'report.html'}")

    print(f"\nBaseline: ORM objects aggregated in Python (at most {sample:,} rows loaded, then extrapolated):")
    for label, campaign, period in (cases[0], cases[3]):
        secs, loaded, total = orm_baseline(engine, campaign_id=campaign, start=period[0], end=period[1], sample=sample)
        estimate = secs * total / loaded if loaded else 0.0
        how = "measured" if loaded == total else f"extrapolated from {loaded:,} of {total:,} rows"
        ratio = estimate / sql_times[label] if sql_times[label] else float("inf")
        print(f"  {estimate:7.1f} s  {label}  ({how}; {secs:.1f} s for the sample) -> SQL is {ratio:,.0f}x faster")
    target = sql_times[cases[0][0]]
    print(f"\ncoverage report query: {target:.3f} s (target < 2 s: {'met' if target < 2 else 'NOT met'})")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000, help="broadcast rows to generate")
    parser.add_argument("--sample", type=int, default=500_000, help="rows the ORM baseline loads at most")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out", help="cache folder")
    parser.add_argument("--regen", action="store_true", help="regenerate the cached database")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = _db_path(args.out, args.rows)
    if args.regen:
        path.unlink(missing_ok=True)
    if path.exists():
        print(f"using cached {path}")
    else:
        print(f"generating {args.rows:,} broadcast rows into {path} ...")
        generate(path, args.rows)
    run(path, args.sample)


if __name__ == "__main__":
    main()
