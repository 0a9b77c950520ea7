"""QR confirmation links (issue 17): a hashed token bound to one village's exported programs and days, that
expires, can be revoked, confirms as 扫码 with the slot start as air time, and touches nothing of another village."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from outreach import db, records
from outreach.cli import cli
from outreach.config import load_config
from outreach.errors import RecordError
from outreach.models import Broadcast, BroadcastStatus, ConfirmToken, Evidence
from outreach.planning.workspace import load, open_database
from outreach.records.confirm_links import link_expiry, token_sha256

S = BroadcastStatus
TZ = ZoneInfo("Asia/Shanghai")
MINE, OTHER = "dazhuang-07", "dazhuang-05"  # 西岗村 and 李家洼村, both fed by USB stick
FIRST, LAST = date(2026, 12, 1), date(2026, 12, 2)
EXPORTED = datetime(2026, 11, 30, 20, 0, tzinfo=TZ)
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=TZ)
STARTS = {"morning": time(6, 30), "evening": time(18, 30)}


def export(s, village: str, day: date, slot: str, at: datetime = EXPORTED,  # type: ignore[no-untyped-def]
           scripts=("traffic-helmet",)) -> None:
    plan = records.BroadcastPlan(day, slot, village, "dazhuang", "always-on", tuple(scripts),
                                 datetime.combine(day, STARTS[slot], TZ))
    records.record_exported(s, [plan], program_sha256=("b" if at != EXPORTED else "a") * 64, engine="offline", at=at)


@pytest.fixture
def county(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Both villages' packs for 12-01..12-03 exported on 11-30; 西岗村's link issued with the export."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'links.db'}")
    engine = open_database(load(load_config(workspace)))
    with db.session(engine) as s:
        for village in (MINE, OTHER):
            for day in (FIRST, LAST, LAST + timedelta(days=1)):
                for slot in STARTS:
                    export(s, village, day, slot)
        token = records.issue_link(s, village_id=MINE, first_day=FIRST, last_day=LAST, now=EXPORTED, valid_days=30)
    yield engine, token
    engine.dispose()


def rows(engine, village: str) -> dict[tuple[date, str], Broadcast]:  # type: ignore[no-untyped-def]
    with db.session(engine) as s:
        return {(b.date, b.slot): b for b in s.scalars(sa.select(Broadcast).where(Broadcast.village_id == village))}


def use(engine, fn, *args, **kw):  # type: ignore[no-untyped-def]
    with db.session(engine) as s:
        return fn(s, *args, **kw)


def test_only_the_hash_is_stored_and_the_token_is_long_and_random(county) -> None:
    engine, token = county
    with db.session(engine) as s:
        [row] = s.scalars(sa.select(ConfirmToken))
        dump = " ".join(str(v) for v in row.model_dump().values())
    assert row.token_sha256 == token_sha256(token) and token not in dump
    assert len(token) >= 22 and (row.village_id, row.first_day, row.last_day) == (MINE, FIRST, LAST)
    assert row.expires_at == datetime(2027, 1, 2, 0, 0, tzinfo=TZ)  # 30 days after the end of 12-02
    assert records.link_url("https://gb.example.gov.cn/", token) == f"https://gb.example.gov.cn/c/{token}"
    another = use(engine, records.issue_link, village_id=MINE, first_day=FIRST, last_day=LAST, now=EXPORTED,
                  valid_days=30)
    assert another != token


def test_a_link_shows_only_its_villages_exported_programs_of_its_days(county) -> None:
    engine, token = county
    with db.session(engine) as s:
        s.execute(sa.update(Broadcast).where(Broadcast.village_id == MINE, Broadcast.date == FIRST,
                                             Broadcast.slot == "evening").values(status=S.PLANNED,
                                                                                 exported_at=None))
        programs = records.link_programs(s, records.open_link(s, token, now=NOW))
    assert [(p.day, p.slot) for p in programs] == [(FIRST, "morning"), (LAST, "morning"), (LAST, "evening")]
    assert all(p.open and not p.confirmed and not p.changed for p in programs)
    assert programs[0].script_ids == ["traffic-helmet"]


def test_confirming_through_a_link_is_entered_by_qr_with_the_slot_start_as_air_time(county) -> None:
    engine, token = county
    assert use(engine, records.confirm_by_link, token, day=FIRST, slot="evening", confirmed_by="王支书", now=NOW)
    row = rows(engine, MINE)[(FIRST, "evening")]
    assert (row.status, row.evidence, row.confirmed_by, row.entered_by) == (
        S.CONFIRMED, Evidence.CONFIRMED, "王支书", "扫码")
    assert (row.aired_at, row.confirmed_at) == (datetime(2026, 12, 1, 18, 30, tzinfo=TZ), NOW)
    again = use(engine, records.confirm_by_link, token, day=FIRST, slot="evening", confirmed_by="别人", now=NOW)
    assert again is False and rows(engine, MINE)[(FIRST, "evening")].confirmed_by == "王支书"
    assert {r.status for r in rows(engine, OTHER).values()} == {S.EXPORTED}  # nothing of another village


@pytest.mark.parametrize("day, slot, message", [
    pytest.param(LAST + timedelta(days=1), "morning", "不在这个二维码对应的U盘里", id="a-day-outside-the-link"),
    pytest.param(LAST, "evening", "18:30（北京时间）才开始，还没有播出", id="not-started-yet"),
])
def test_a_link_confirms_nothing_it_does_not_carry(county, day: date, slot: str, message: str) -> None:
    engine, token = county
    with pytest.raises(RecordError, match=message):
        use(engine, records.confirm_by_link, token, day=day, slot=slot, confirmed_by="王支书", now=NOW)
    assert rows(engine, MINE)[(day, slot)].status is S.EXPORTED


def test_a_program_exported_again_after_the_link_was_made_is_refused_until_rebound(county) -> None:
    """A confirmation credits only what the stick carried: this QR's stick may hold the older version."""
    engine, token = county
    later = EXPORTED + timedelta(hours=20)
    use(engine, export, MINE, FIRST, "morning", at=later, scripts=("fraud-96110",))
    [program] = [p for p in use(engine, lambda s: records.link_programs(s, records.open_link(s, token, now=NOW)))
                 if (p.day, p.slot) == (FIRST, "morning")]
    assert program.changed
    with pytest.raises(RecordError, match="重新导出过"):
        use(engine, records.confirm_by_link, token, day=FIRST, slot="morning", confirmed_by="王支书", now=NOW)
    # The same stick exported again unchanged keeps its token, bound to what is logged now.
    assert use(engine, records.rebind_link, token, village_id=MINE, first_day=FIRST, last_day=LAST, now=later,
               valid_days=30)
    assert use(engine, records.confirm_by_link, token, day=FIRST, slot="morning", confirmed_by="王支书", now=NOW)


@pytest.mark.parametrize("change", ["other-village", "other-days", "revoked", "expired", "not-a-token"])
def test_a_token_is_rebound_only_to_the_same_village_and_days_while_valid(county, change: str) -> None:
    engine, token = county
    args = {"village_id": MINE, "first_day": FIRST, "last_day": LAST, "now": NOW, "valid_days": 30}
    if change == "other-village":
        args["village_id"] = OTHER
    elif change == "other-days":
        args["last_day"] = LAST + timedelta(days=1)
    elif change == "revoked":
        use(engine, records.revoke_links, MINE, now=NOW)
    elif change == "expired":
        args["now"] = link_expiry(LAST, 30)
    else:
        token = "../../etc/passwd"
    assert use(engine, records.rebind_link, token, **args) is False


def test_a_link_expires_after_the_set_days_and_says_until_when(county) -> None:
    engine, token = county
    expires = link_expiry(LAST, 30)
    assert use(engine, records.open_link, token, now=expires - timedelta(seconds=1)).village_id == MINE
    with pytest.raises(records.LinkError, match="这个二维码已过期（有效期到 2027-01-02 00:00）") as err:
        use(engine, records.open_link, token, now=expires)
    assert err.value.status == 410
    with pytest.raises(records.LinkError, match="已过期"):
        use(engine, records.confirm_by_link, token, day=FIRST, slot="morning", confirmed_by="王支书", now=expires)
    assert rows(engine, MINE)[(FIRST, "morning")].status is S.EXPORTED


def test_revoke_by_village_name_on_the_cli_stops_the_link_at_once(county, workspace: Path) -> None:
    engine, token = county
    result = CliRunner().invoke(cli, ["confirm-link", "revoke", "西岗村", "-w", str(workspace)])
    assert result.exit_code == 0, result.output
    assert "已停用 dazhuang-07 的 1 个扫码确认链接" in result.stdout
    with pytest.raises(records.LinkError, match="这个二维码已在 .* 停用") as err:
        use(engine, records.open_link, token, now=NOW)
    assert err.value.status == 410
    listed = CliRunner().invoke(cli, ["confirm-link", "list", "--village", MINE, "-w", str(workspace)])
    assert listed.exit_code == 0 and "dazhuang-07  2026-12-01 至 2026-12-02" in listed.stdout
    assert "已停用" in listed.stdout and token not in listed.stdout


@pytest.mark.parametrize("token", ["", "short", "x" * 200, "a/b/c/d/e/f/g/h/i/j/k", "A" * 22])
def test_unknown_or_malformed_tokens_are_404(county, token: str) -> None:
    engine, _ = county
    with pytest.raises(records.LinkError, match="没有这个二维码链接") as err:
        use(engine, records.open_link, token, now=NOW)
    assert err.value.status == 404
