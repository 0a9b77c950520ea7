"""Strict reading of field-record CSV files, and the row-by-row import loop shared by confirmations and handouts.

Each physical line is one record: a quote that is not closed on its own line
is an error at that line, and the lines after it are still read. That is
stricter than the csv module's default (which lets one stray quote swallow
the rest of the file) and fits what Excel writes for these files.

A kind of file may also be read without a header row (`Layout.positional`):
the lines 播放说明.txt asks villages to send back are `dazhuang-07,2026-12-01,早间,王支书`,
typed on a phone, so a line with no ASCII comma may use Chinese commas (，) or tabs
(cells pasted from Excel) between its fields.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from outreach.errors import RecordError
from outreach.models import ImportKind, ImportRecord

__all__ = ["ImportReport", "Layout", "Pasted", "read_csv", "read_text", "run_import"]

_LINES = re.compile(r"\r\n|\r|\n")
_MAX_LINE = 4000
_INVISIBLE = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")
MAX_PASTED_CHARS = 200_000
"""Most characters a pasted block of lines may have (a few thousand lines)."""


@dataclass(frozen=True)
class Layout:
    """How one kind of file names its columns: the ones it must have, and how it may be written without a header."""

    required: Sequence[str]
    positional: Sequence[str] = ()  # the columns, in order, of lines written without a header row; () = header needed
    aliases: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # 日期 -> date, ...

    def column(self, name: str) -> str:
        """The column a header cell names (lower-cased, aliases resolved)."""
        cleaned = name.strip().lower()
        return self.aliases.get(cleaned, cleaned)

    def is_header(self, cells: Sequence[str]) -> bool:
        """Whether a first line names columns: its first cell, or two of its cells, are column names."""
        known = set(self.required) | set(self.positional) | set(self.aliases)
        names = [self.column(c) for c in cells]
        return bool(names) and (names[0] in known or sum(n in known for n in names) >= 2) or not self.positional

    def how(self) -> str:
        """The fix for a missing or empty header, for messages."""
        fix = f"第一行必须写出列名 {','.join(self.required)}"
        if self.positional:
            fix += f"；也可以不写列名行，每行按 {','.join(self.positional)} 的顺序写一条"
        return fix


@dataclass(frozen=True)
class Pasted:
    """Lines pasted into a form (the web's paste box, or stdin), imported like a file called `name`."""

    text: str
    name: str = "粘贴的内容"


@dataclass
class ImportReport:
    """What a CSV import did: rows added, rows already there, bad rows and warnings by line number."""

    path: Path
    rows_ok: int = 0
    rows_skipped: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    warnings: list[tuple[int, str]] = field(default_factory=list)


def _decode(path: Path) -> tuple[bytes, str]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise RecordError(f"{path}：无法读取文件（{e.strerror}）；请检查路径") from e
    try:
        return data, data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise RecordError(
            f"{path} 第 {line} 行：不是 UTF-8 文本（字节位置 {e.start}）；请在 Excel 里用“另存为”→"
            "“CSV UTF-8 (逗号分隔)”保存后再导入"
        ) from e


def _separated(line: str) -> str:
    """A line with its fields separated by ASCII commas: a line without any may use ， or tabs.

    Zero-width characters, which text copied out of chat apps carries, are dropped.
    """
    line = _INVISIBLE.sub("", line)
    if "," in line:
        return line
    if "，" in line:
        return line.replace("，", ",")
    return line.replace("\t", ",")


def _split(line: str) -> list[str]:
    """The fields of one line; RecordError for broken quoting or control characters."""
    if len(line) > _MAX_LINE:
        raise RecordError(f"这一行有 {len(line)} 个字符（最多 {_MAX_LINE} 个）；请检查文件")
    line = _separated(line)
    bad = next((ch for ch in line if unicodedata.category(ch) in ("Cc", "Zl", "Zp")), None)
    if bad is not None:
        raise RecordError(f"这一行含有控制字符（U+{ord(bad):04X}）；请删掉它")
    if line.count('"') % 2:
        raise RecordError('这一行的引号（"）没有成对；请补上另一半引号，或删掉多余的引号')
    try:
        return next(csv.reader([line], strict=True))
    except csv.Error as e:
        # The csv module's reason is English; with strict=True and paired quotes it is
        # practically always "',' expected after '\"'" (text right after a closing quote).
        reason = "右引号后面应紧跟逗号" if "expected after" in str(e) else str(e)
        raise RecordError(f'引号用法不对（{reason}）；带引号的字段请写成 "文字"，后面紧跟逗号') from None


Rows = list[tuple[int, dict[str, str] | RecordError]]
"""Data rows by line number: {column: value}, or the line's error."""


def _record(record: list[str], header: list[str], positional: bool) -> dict[str, str] | RecordError:
    """One data line as {column: value}; a line without a header folds extra fields into its last column."""
    if positional and len(record) > len(header):
        # A note written with ASCII commas and no quotes: keep it whole rather than refuse the line.
        record = [*record[:len(header) - 1], ",".join(record[len(header) - 1:])]
    extra = record[len(header):]
    if any(cell.strip() for cell in extra):
        return RecordError(f"这一行有 {len(record)} 个字段，表头只有 {len(header)} 个；请检查是否有多余的逗号")
    return {name: value.strip() for name, value in zip(header, record) if name}


def _rows(text: str, layout: Layout, where: str) -> Rows:
    """The data rows of `text` by line number; `where` (the file) names it in whole-file errors."""
    header: list[str] | None = None
    positional = False
    rows: list[tuple[int, dict[str, str] | RecordError]] = []
    for number, line in enumerate(_LINES.split(text), start=1):
        if not line.strip(" ,，\t"):
            continue
        try:
            record = _split(line)
        except RecordError as e:
            if header is None and not layout.positional:
                raise RecordError(f"{where} 第 {number} 行：{e}") from None
            rows.append((number, e))
            continue
        if header is None:
            if not layout.is_header(record):
                header, positional = list(layout.positional), True
            else:
                header = [layout.column(h) for h in record]
                missing = [col for col in layout.required if col not in header]
                if missing:
                    raise RecordError(f"{where} 第 {number} 行：缺少列 {', '.join(missing)}；{layout.how()}")
                continue
        rows.append((number, _record(record, header, positional)))
    if header is None and not rows:
        raise RecordError(f"{where}：文件是空的；{layout.how()}")
    return rows


def read_csv(path: Path, required: Sequence[str] | Layout) -> tuple[str, Rows]:
    """The file's SHA-256 and its data rows as (line number, {column: value} or the line's error).

    `required` is the columns the header must have, or a Layout (which may allow lines without a header).
    Raises RecordError (naming the file and line) if the file cannot be read,
    is not UTF-8, is empty, or its header lacks a required column.
    """
    layout = required if isinstance(required, Layout) else Layout(tuple(required))
    data, text = _decode(path)
    return hashlib.sha256(data).hexdigest(), _rows(text, layout, str(path))


def read_text(pasted: Pasted, layout: Layout) -> tuple[str, Rows]:
    """`read_csv` for pasted lines: their SHA-256 and rows. Raises RecordError if there are none or too many."""
    text = pasted.text.removeprefix("\ufeff")
    if len(text) > MAX_PASTED_CHARS:
        raise RecordError(f"{pasted.name}有 {len(text):,} 个字符（最多 {MAX_PASTED_CHARS:,} 个）；请分几次粘贴")
    data = text.encode("utf-8")
    return hashlib.sha256(data).hexdigest(), _rows(text, layout, pasted.name)


def _log_import(session: Session, sha: str, kind: ImportKind, path: Path, now: dt.datetime) -> None:
    """Remember the file (last import wins). Taken first: on SQLite this takes the write lock, and on
    PostgreSQL a second import of the same file waits here until the first has committed."""
    values = {"sha256": sha, "kind": kind.value, "filename": path.name[:500], "imported_at": now,
              "rows_ok": 0, "rows_bad": 0}
    table = ImportRecord.__table__
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table).values(values)
    session.execute(stmt.on_conflict_do_update(index_elements=[table.c.sha256],
                                               set_={"imported_at": now, "filename": values["filename"]}))


def run_import(session: Session, source: Path | Pasted, columns: Sequence[str] | Layout, kind: ImportKind,
               now: dt.datetime,
               prepare: Callable[[], Callable[[dict[str, str], ImportReport, int], bool]]) -> ImportReport:
    """Apply a row handler to every row of a CSV file (or pasted lines); rows already recorded are skipped, not refused.

    Each row carries its own key (a handout's natural key, a confirmation's
    village, day and slot), so a file with bad rows can be imported again
    after the fix: only the rows not yet recorded are added. `prepare` runs
    after the file is logged (and, on SQLite, the write lock is held) and
    returns the handler, which returns False for a row already recorded.
    """
    layout = columns if isinstance(columns, Layout) else Layout(tuple(columns))
    if isinstance(source, Pasted):
        sha, rows = read_text(source, layout)
        path = Path(source.name)
    else:
        path = source
        sha, rows = read_csv(path, layout)
    _log_import(session, sha, kind, path, now)
    handle = prepare()
    report = ImportReport(path=path)
    for line, row in rows:
        try:
            if isinstance(row, RecordError):
                raise row
            if handle(row, report, line):
                report.rows_ok += 1
            else:
                report.rows_skipped += 1
        except RecordError as e:
            report.errors.append((line, str(e)))
    session.execute(sa.update(ImportRecord).where(ImportRecord.sha256 == sha).values(
        rows_ok=report.rows_ok, rows_bad=len(report.errors)))
    return report
