"""Commands for field records: `confirm` (village committee CSVs) and `handout` (market-day leaflets)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import date, datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import click
from sqlmodel import Session

from outreach import db, records
from outreach.cli.base import Workspace, cli, with_workspace
from outreach.config import TIMEZONE


@contextlib.contextmanager
def _open(ws: Workspace) -> Iterator[Session]:
    engine = db.make_engine(ws.config.resolved_database_url())
    try:
        db.upgrade(engine)
        with db.session(engine) as s:
            yield s
    finally:
        engine.dispose()


def _report(path: Path, report: records.ImportReport, noun: str) -> None:
    """Print an import's counts and its bad rows; exit 1 if any row was bad."""
    if report.duplicate_file:
        when = report.first_imported_at.isoformat(timespec="seconds") if report.first_imported_at else "earlier"
        click.echo(f"{path}: already imported ({when}); nothing added")
        return
    click.echo(f"{path}: {report.rows_ok} {noun}, {report.rows_skipped} already recorded, {len(report.errors)} bad")
    for line, message in report.errors:
        click.echo(f"{path}:{line}: {message}", err=True)
    if report.errors:
        raise SystemExit(1)


@cli.command()
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_workspace
def confirm(ws: Workspace, csv_file: Path) -> None:
    """Import village committee confirmations for exported (USB) programs.

    CSV_FILE is UTF-8 (Excel's "CSV UTF-8" is fine) with the header
    village_id,date,slot,confirmed_by[,note]; slot is morning or evening
    (早上/晚上 accepted). Good rows are kept; bad rows are listed as
    FILE:LINE: message and the command exits 1. Importing the same file
    again adds nothing.
    """
    with _open(ws) as s:
        report = records.import_confirmations(s, csv_file, now=datetime.now(timezone.utc))
    _report(csv_file, report, "confirmed")


@cli.command()
@click.option("--market", "market_id", help="Market id, as in schedules/.")
@click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]), help="Market day (default: today, county time).")
@click.option("--leaflets", type=int, help="Leaflets handed out.")
@click.option("--people", type=int, help="People spoken to.")
@click.option("--topics", help="Comma-separated: traffic, anti_fraud (交通, 反诈 accepted).")
@click.option("--staff", default="", help="Who handed them out.")
@click.option("--note", default="", help="Free-text note.")
@click.option("--csv", "csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Import many records from a CSV file instead.")
@with_workspace
def handout(ws: Workspace, market_id: str | None, day: datetime | None, leaflets: int | None, people: int | None,
            topics: str | None, staff: str, note: str, csv_file: Path | None) -> None:
    """Record leaflets handed out at a market, one record or a CSV file of them.

    \b
    One record:  outreach handout --market M --date 2024-05-03 --leaflets 200 --people 150 --topics traffic,anti_fraud
    A CSV file:  outreach handout --csv FILE.csv

    The CSV is UTF-8 with the header market_id,date,leaflets,people,topics,staff[,note];
    topics are separated by ; or 、. Rows already recorded are skipped, so a file
    can be imported again; bad rows are listed as FILE:LINE: message and the
    command exits 1.
    """
    now = datetime.now(timezone.utc)
    if csv_file is not None:
        if any(v is not None for v in (market_id, day, leaflets, people, topics)):
            raise click.UsageError("--csv imports a file; do not combine it with --market/--date/--leaflets/...")
        with _open(ws) as s:
            report = records.import_handouts(s, csv_file, now=now)
        _report(csv_file, report, "recorded")
        return
    missing = [name for name, v in (("--market", market_id), ("--leaflets", leaflets), ("--people", people),
                                    ("--topics", topics)) if v is None]
    if missing:
        raise click.UsageError(f"missing {', '.join(missing)} (or use --csv FILE)")
    assert market_id is not None and leaflets is not None and people is not None and topics is not None
    when: date = day.date() if day else now.astimezone(ZoneInfo(TIMEZONE)).date()
    with _open(ws) as s:
        h = records.record_handout(s, market_id=market_id, day=when, leaflets=leaflets, people=people,
                                   topics=[topics], staff=staff, note=note, now=now)
    click.echo(f"recorded handout #{h.id}: {h.market_id} {h.date}, {h.leaflets} leaflets, "
               f"{h.people} people, topics {h.topics}")
