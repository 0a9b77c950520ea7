"""Strict reading of field-record CSV files, and the row-by-row import loop shared by confirmations and handouts.

Each physical line is one record: a quote that is not closed on its own line
is an error at that line, and the lines after it are still read. That is
stricter than the csv module's default (which lets one stray quote swallow
the rest of the file) and fits what Excel writes for these files.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from outreach.errors import RecordError
from outreach.models import ImportKind, ImportRecord

__all__ = ["ImportReport", "read_csv", "run_import"]

_LINES = re.compile(r"\r\n|\r|\n")
_MAX_LINE = 4000


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


def _split(line: str) -> list[str]:
    """The fields of one line; RecordError for broken quoting or control characters."""
    if len(line) > _MAX_LINE:
        raise RecordError(f"这一行有 {len(line)} 个字符（最多 {_MAX_LINE} 个）；请检查文件")
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


def read_csv(path: Path, required: Sequence[str]) -> tuple[str, list[tuple[int, dict[str, str] | RecordError]]]:
    """The file's SHA-256 and its data rows as (line number, {column: value} or the line's error).

    Raises RecordError (naming the file and line) if the file cannot be read,
    is not UTF-8, is empty, or its header lacks a required column.
    """
    data, text = _decode(path)
    header: list[str] | None = None
    rows: list[tuple[int, dict[str, str] | RecordError]] = []
    for number, line in enumerate(_LINES.split(text), start=1):
        if not line.strip(" ,\t"):
            continue
        try:
            record = _split(line)
        except RecordError as e:
            if header is None:
                raise RecordError(f"{path} 第 {number} 行：{e}") from None
            rows.append((number, e))
            continue
        if header is None:
            header = [h.strip().lower() for h in record]
            missing = [col for col in required if col not in header]
            if missing:
                raise RecordError(
                    f"{path} 第 {number} 行：缺少列 {', '.join(missing)}；"
                    f"第一行必须写出列名 {','.join(required)}"
                )
            continue
        extra = record[len(header):]
        if any(cell.strip() for cell in extra):
            rows.append((number, RecordError(f"这一行有 {len(record)} 个字段，表头只有 {len(header)} 个；"
                                             "请检查是否有多余的逗号")))
            continue
        rows.append((number, {name: value.strip() for name, value in zip(header, record) if name}))
    if header is None:
        raise RecordError(f"{path}：文件是空的；第一行必须写出列名 {','.join(required)}")
    return hashlib.sha256(data).hexdigest(), rows


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


def run_import(session: Session, path: Path, columns: Sequence[str], kind: ImportKind, now: dt.datetime,
               prepare: Callable[[], Callable[[dict[str, str], ImportReport, int], bool]]) -> ImportReport:
    """Apply a row handler to every row of a CSV file; rows already recorded are skipped, not refused.

    Each row carries its own key (a handout's natural key, a confirmation's
    village, day and slot), so a file with bad rows can be imported again
    after the fix: only the rows not yet recorded are added. `prepare` runs
    after the file is logged (and, on SQLite, the write lock is held) and
    returns the handler, which returns False for a row already recorded.
    """
    sha, rows = read_csv(path, columns)
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
