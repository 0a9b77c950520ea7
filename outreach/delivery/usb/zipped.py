"""The dashboard's pack ZIP: the very pack `outreach export` writes, exported into a temporary folder and zipped.

The ZIP holds what a stick would after `outreach export --out 文件夹` for the same villages and days:
the village folders with their program MP3s (ID3 tags), playlist.m3u, 播放说明.txt and the QR
confirmation page and picture when [web] public_url is set, plus manifest.json and 扫码确认单.html
at the top. Like an export it logs the programs as exported and binds a QR link to them.
The folder is zipped while the ZIP is sent and removed when it has been (or the download stops).
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from tempfile import TemporaryDirectory

from sqlalchemy import Engine

from outreach.delivery.usb.export import export_ranges
from outreach.delivery.usb.packs import ExportReport, PackFile, path_part
from outreach.errors import OutputError
from outreach.files import temp_dir
from outreach.planning.workspace import Loaded

__all__ = ["PackZip", "zip_ranges", "days_label", "zip_name", "ascii_zip_name", "export_zip"]

ZIP_KIND = "packzip"  # temporary folders are `outreach-packzip-PID-…` (removed after a crash too)
_STORED = (".mp3", ".png")  # already compressed
_FAILURES_SHOWN = 3


def zip_ranges(files: Iterable[PackFile], village_ids: Collection[str], *, today: date
               ) -> dict[tuple[date, date], list[str]]:
    """The villages of `village_ids` by the (first, last) days their listed pack files cover from `today` on.

    Days before `today` are left out: a stick goes to the village for what it will still air.
    """
    days: dict[str, list[date]] = {}
    for f in files:
        if f.village_id in village_ids and (day := date.fromisoformat(f.date)) >= today:
            days.setdefault(f.village_id, []).append(day)
    ranges: dict[tuple[date, date], list[str]] = {}
    for vid, its in sorted(days.items()):
        ranges.setdefault((min(its), max(its)), []).append(vid)
    return ranges


def days_label(first: date, last: date) -> str:
    """`12月7日`, or `12月7日-12月8日` for a range."""
    one = f"{first.month}月{first.day}日"
    return one if first == last else f"{one}-{last.month}月{last.day}日"


def zip_name(names: Sequence[str], first: date, last: date) -> str:
    """`大庄镇_李家洼村_12月7日-12月8日.zip`: the place names, then the days; safe as a file name."""
    return "_".join([*(path_part(n, "名称") for n in names), days_label(first, last)]) + ".zip"


def ascii_zip_name(ids: Sequence[str], first: date, last: date) -> str:
    """The name for a browser that cannot take a Chinese one: `dazhuang-05_2026-12-07_2026-12-08.zip`."""
    days = [first.isoformat()] if first == last else [first.isoformat(), last.isoformat()]
    return re.sub(r"[^A-Za-z0-9._-]", "_", "_".join([*ids, *days])) + ".zip"


class PackZip:
    """An exported pack in a temporary folder, sent as a ZIP by `stream` (which then removes the folder)."""

    def __init__(self, folder: TemporaryDirectory[str], report: ExportReport, first: date, last: date) -> None:
        self._folder, self.report, self.first, self.last = folder, report, first, last
        self.root = Path(folder.name) / "pack"

    def paths(self) -> list[str]:
        """Every file of the pack, relative to its top, sorted (folders first by name, as an explorer shows)."""
        out = []
        for here, _dirs, files in os.walk(self.root):
            out += [(Path(here) / name).relative_to(self.root).as_posix() for name in files]
        return sorted(out)

    def stream(self) -> Iterator[bytes]:
        """The ZIP, made while it is sent: each file is added, then its bytes handed on; the folder is removed last."""
        sink = _Sink()
        try:
            with zipfile.ZipFile(sink, "w") as zf:  # type: ignore[arg-type]
                for rel in self.paths():
                    kind = zipfile.ZIP_STORED if rel.endswith(_STORED) else zipfile.ZIP_DEFLATED
                    zf.write(self.root / rel, rel, compress_type=kind)
                    yield sink.take()
            yield sink.take()
        finally:
            self.cleanup()

    def cleanup(self) -> None:
        self._folder.cleanup()


class _Sink:
    """A write-only buffer zipfile writes into; the stream takes what was written after each file."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def export_zip(loaded: Loaded, engine: Engine, ranges: Mapping[tuple[date, date], Sequence[str]], *,
               now: datetime) -> PackZip:
    """Export the villages of `ranges` (from `zip_ranges`) as `outreach export` does, into a temporary folder.

    Raises OutputError when there is nothing to export or any file failed (the folder is removed):
    a pack missing a program must not reach a village.
    """
    if not ranges:
        raise OutputError("这些节目包的日期都已经过去了；请先导出今天以后的节目包（outreach export --date 明天）")
    folder = temp_dir(ZIP_KIND)
    try:
        report = export_ranges(loaded, engine, ranges, Path(folder.name) / "pack", now=now)
        if report.failures or not report.files:
            shown = "；".join(f"{rel}：{why}" for rel, why in report.failures[:_FAILURES_SHOWN])
            more = f"（另有 {len(report.failures) - _FAILURES_SHOWN} 处）" if len(report.failures) > _FAILURES_SHOWN else ""
            raise OutputError(f"节目包没有做成：{shown or '没有可播的节目'}{more}；"
                              "请按提示处理后重新下载，或在服务器上运行 outreach export 查看详情")
    except BaseException:
        folder.cleanup()
        raise
    return PackZip(folder, report, min(f for f, _ in ranges), max(last for _, last in ranges))
