"""What the long pages fold away, one <details> per fold: 今天's programs that need nothing (by township),
the plan (by township, then day) and a village's record (by day). What needs someone stays open; a closed
fold still says in one line what it holds, so a phone shows the county in a few screens."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Generic, TypeVar

from outreach.labels import SLOT, STATUS, WEEKDAY
from outreach.models import PROBLEMS

if TYPE_CHECKING:
    from outreach.planning.plan import Program
    from outreach.web.board import Slot
    from outreach.web.data_records import ProgramRow

T = TypeVar("T")
_PROBLEMS = {s.value for s in PROBLEMS}


@dataclass
class Fold(Generic[T]):
    """One <details>: a title and a one-line summary (what the closed fold tells), its items, and whether it
    opens by itself (`problems` > 0, or it is all there is to see)."""

    key: str  # township id or ISO date: the template's data-key, the refresh script's handle
    title: str
    summary: str
    items: list[T]
    open: bool = False
    problems: int = 0


def day_title(day: date) -> str:
    """12月5日 周六."""
    return f"{day.month}月{day.day}日 周{WEEKDAY[day.weekday()]}"


def status_counts(statuses: Iterable[str]) -> str:
    """'已播 10，待播 8': how many programs have each status, in the labels' order."""
    counts = Counter(statuses)
    return "，".join(f"{label} {counts[st]}" for st, label in STATUS.items() if counts[st])


def fine_by_township(slots: Sequence[Slot]) -> list[Fold[Slot]]:
    """今天's programs that need nothing, one closed fold per township (in id order), their order kept."""
    groups: dict[str, list[Slot]] = {}
    for s in slots:
        if not s.problem:
            groups.setdefault(s.township_id, []).append(s)
    return [Fold(tid, rows[0].township or tid,
                 f"{len({s.village_id for s in rows})} 个村 {len(rows)} 场：{status_counts(s.status for s in rows)}",
                 rows)
            for tid, rows in sorted(groups.items())]


def history_by_day(rows: Sequence[ProgramRow], today: date) -> list[Fold[ProgramRow]]:
    """A village's record, one fold per day, newest first, mornings before evenings; a day with a problem
    (漏播, 失败, 中断) opens, and so does today."""
    days: dict[date, list[ProgramRow]] = {}
    for r in rows:
        days.setdefault(r.date, []).append(r)
    order = list(SLOT)
    out = []
    for day in sorted(days, reverse=True):
        group = sorted(days[day], key=lambda r: order.index(r.slot) if r.slot in order else len(order))
        problems = sum(r.status in _PROBLEMS for r in group)
        summary = "，".join(f"{SLOT.get(r.slot, r.slot)} {STATUS.get(r.status, r.status)}" for r in group)
        out.append(Fold(day.isoformat(), day_title(day), summary, group, open=bool(problems) or day == today,
                        problems=problems))
    return out


@dataclass
class PlanRow:
    """One village on one day of the plan: its program per slot (None: nothing plays)."""

    village_id: str
    village: str
    programs: dict[str, Program | None]


def _plan_summary(programs: int, blocked: int, silent: int) -> str:
    text = f"{programs} 场节目"
    if blocked:
        text += f"，{blocked} 条不播"
    if silent:
        text += f"，{silent} 个村没有节目"
    return text


def plan_by_township(programs: Iterable[Program], dates: Sequence[date], by_township: Mapping[str, Sequence[str]],
                     township_names: Mapping[str, str], village_names: Mapping[str, str]) -> list[Fold[Fold[PlanRow]]]:
    """The plan as folds: a township (in id order), then a day, then its villages' programs.

    A day or township with a blocked item (不播) opens; so does everything when only one township, one day
    or one village is asked for (the calendar links to one township's day)."""
    cells = {(p.village_id, p.date, p.slot): p for p in programs}
    single_village = sum(len(v) for v in by_township.values()) == 1
    out = []
    for tid, vids in sorted(by_township.items()):
        days, town_programs, town_blocked = [], 0, 0
        for day in dates:
            rows = [PlanRow(v, village_names.get(v, v), {s: cells.get((v, day, s)) for s in SLOT}) for v in vids]
            found = [p for r in rows for p in r.programs.values() if p is not None]
            blocked = sum(len(p.blocked_items) for p in found)
            silent = sum(not any(r.programs.values()) for r in rows)
            days.append(Fold(day.isoformat(), day_title(day), _plan_summary(len(found), blocked, silent), rows,
                             open=bool(blocked) or len(dates) == 1 or single_village, problems=blocked))
            town_programs, town_blocked = town_programs + len(found), town_blocked + blocked
        summary = f"{len(vids)} 个村，{len(dates)} 天 " + _plan_summary(town_programs, town_blocked, 0)
        out.append(Fold(tid, township_names.get(tid, tid), summary, days,
                        open=bool(town_blocked) or len(by_township) == 1, problems=town_blocked))
    return out
