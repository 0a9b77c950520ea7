"""The QR confirmation parts of USB packs: 扫码确认.png and 扫码确认.html per village, 扫码确认单.html for the pack.

Each USB-fed village folder gets a QR code (segno) for `<[web] public_url>/c/<token>`,
a link bound to that village's exported programs of the export's days
(records.confirm_links). The county clerk prints 扫码确认单.html at the pack's top:
one A4 page per village, with its name, QR code and programs, to hand over with the
stick; the village folder carries its own page and the PNG, so a copied folder is whole.

A re-export whose files in a folder are all unchanged keeps the token already on the
stick (a printed page stays valid); any file written there gets a new token.
Without `[web] public_url` there is no QR code: the page says how to set it.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path, PurePosixPath

import jinja2
from markupsafe import Markup
from sqlalchemy import Engine

from outreach.db import session
from outreach.delivery.usb.packs import ExportReport, PackFile, slot_label, village_folder
from outreach.errors import OutputError
from outreach.files import describe_os_error, write_bytes_atomic, write_text_if_changed
from outreach.planning.workspace import Loaded
from outreach.records.confirm_links import (
    LINK_PATH, issue_link, last_valid_day, link_expiry, link_url, rebind_link,
)

__all__ = ["QR_PNG", "QR_SHEET", "PACK_SHEET", "NO_PUBLIC_URL", "SheetVillage", "qr_png", "token_on_stick",
           "village_sheet", "pack_sheet", "write_confirm_sheets"]

QR_PNG = "扫码确认.png"
QR_SHEET = "扫码确认.html"
PACK_SHEET = "扫码确认单.html"
NO_PUBLIC_URL = ("outreach.toml 里没有设置 [web] public_url（村里的手机能打开的本系统网址），节目包里没有放扫码确认二维码；"
                 "设置后重新导出即可补上（节目文件没变时不会重写）")
_BEGIN, _END = "<!-- sheet -->", "<!-- /sheet -->"
_TOKEN_IN_SHEET = re.compile(r'class="link" href="[^"]*' + re.escape(LINK_PATH) + r'([A-Za-z0-9_-]{20,64})"')


@dataclass(frozen=True)
class SheetVillage:
    """What one village's confirmation page shows."""

    county: str
    township_name: str
    village_id: str
    village_name: str
    first_day: date
    last_day: date
    files: Sequence[PackFile]
    url: str | None  # None: no [web] public_url
    expires_at: datetime | None


def qr_png(url: str) -> bytes:
    """The QR code of `url` as a PNG (10 px modules, quiet zone of 4), error correction M."""
    import segno

    out = io.BytesIO()
    segno.make(url, error="m", micro=False).save(out, kind="png", scale=10, border=4)
    return out.getvalue()


def _qr_svg(url: str) -> str:
    import segno

    return str(segno.make(url, error="m", micro=False).svg_inline(scale=4, border=4, omitsize=True))


@functools.cache
def _environment() -> jinja2.Environment:
    """The pages' templates, templates/confirm_*.html, loaded from the package."""
    return jinja2.Environment(loader=jinja2.PackageLoader("outreach.delivery.usb", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined)


def _day(value: date) -> str:
    return f"{value.year}年{value.month}月{value.day}日"


def _section(v: SheetVillage) -> str:
    """One village's page: name, QR code (or why there is none), what to do, its programs."""
    files = [{"day": _day(date.fromisoformat(f.date)), "slot": slot_label(f.slot), "start": f.start,
              "scripts": "；".join(f.scripts)} for f in sorted(v.files, key=lambda f: f.path)]
    days = _day(v.first_day) if v.first_day == v.last_day else f"{_day(v.first_day)} 至 {_day(v.last_day)} "
    return _environment().get_template("confirm_page.html").render(
        v=v, files=files, days=days, no_url=NO_PUBLIC_URL, svg=Markup(_qr_svg(v.url)) if v.url else "",
        until=_day(last_valid_day(v.expires_at)) if v.expires_at else "").strip()


def _page(title: str, sections: Sequence[str]) -> str:
    return _environment().get_template("confirm_sheet.html").render(
        title=title, pages=[Markup(s) for s in sections])


def village_sheet(v: SheetVillage) -> str:
    """扫码确认.html of one village folder: its page, ready to print."""
    return _page(f"{v.village_name} 播出确认", [_section(v)])


def pack_sheet(sections: Sequence[str]) -> str:
    """扫码确认单.html: every village page of the pack, one per printed page."""
    return _page("扫码确认单", sections)


def token_on_stick(here: Path) -> str | None:
    """The token of the QR page already in a village folder, if any."""
    try:
        found = _TOKEN_IN_SHEET.search((here / QR_SHEET).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None
    return found[1] if found else None


def _write_village(here: Path, v: SheetVillage) -> None:
    if v.url is None:
        (here / QR_PNG).unlink(missing_ok=True)
    else:
        png = qr_png(v.url)
        try:
            same = (here / QR_PNG).read_bytes() == png
        except OSError:
            same = False
        if not same:
            write_bytes_atomic(here / QR_PNG, png)
    write_text_if_changed(here / QR_SHEET, village_sheet(v))


def _clear(here: Path) -> None:
    for name in (QR_PNG, QR_SHEET):
        (here / name).unlink(missing_ok=True)


def _write_pack_sheet(out_dir: Path) -> None:
    """The pack's 扫码确认单.html from every village page in it (removed when there are none)."""
    sections = []
    for page in sorted(out_dir.glob(f"*/*/{QR_SHEET}")):
        text = page.read_text(encoding="utf-8")
        start, end = text.find(_BEGIN), text.find(_END)
        if 0 <= start < end:
            sections.append(text[start:end + len(_END)])
    if sections:
        write_text_if_changed(out_dir / PACK_SHEET, pack_sheet(sections))
    else:
        (out_dir / PACK_SHEET).unlink(missing_ok=True)


def write_confirm_sheets(loaded: Loaded, engine: Engine, out_dir: Path, report: ExportReport, *,
                         village_ids: Sequence[str], usb: set[str], first_day: date, last_day: date,
                         now: datetime) -> None:
    """Give each exported USB-fed village folder its QR page (and link); spare and empty folders lose theirs.

    Call after the export is logged, with the export's `now`: a link confirms only rows exported
    no later than it was bound. Failures are added to `report` as (folder, message), the rest is
    still written; without [web] public_url, `report.alerts` says so once.
    """
    registry, web = loaded.registry, loaded.config.web
    files: dict[str, list[PackFile]] = {}
    for f in report.files:
        files.setdefault(str(PurePosixPath(f.path).parent), []).append(f)
    written = {str(PurePosixPath(f.path).parent) for f in report.written}
    failures: list[tuple[str, str]] = []
    with session(engine) as s:
        for vid in village_ids:
            v = registry.villages[vid]
            town = registry.townships[v.township_id]
            folder = village_folder(v.township_id, town.name, v.id, v.name)
            here = out_dir / folder
            try:
                if vid not in usb or folder not in files or not here.is_dir():
                    if here.is_dir():
                        _clear(here)
                    continue
                url = expires = None
                if web.public_url:
                    days = {"village_id": vid, "first_day": first_day, "last_day": last_day, "now": now,
                            "valid_days": web.confirm_link_days}
                    token = token_on_stick(here)
                    if folder in written or token is None or not rebind_link(s, token, **days):
                        token = issue_link(s, **days)
                    url, expires = link_url(web.public_url, token), link_expiry(last_day, web.confirm_link_days)
                _write_village(here, SheetVillage(registry.county, town.name, vid, v.name, first_day, last_day,
                                                  files[folder], url, expires))
            except OutputError as exc:
                failures.append((folder, str(exc)))
            except OSError as exc:
                failures.append((folder, describe_os_error(here, exc)))
    try:
        _write_pack_sheet(out_dir)
    except OutputError as exc:
        failures.append((PACK_SHEET, str(exc)))
    except OSError as exc:
        failures.append((PACK_SHEET, describe_os_error(out_dir / PACK_SHEET, exc)))
    report.failures += failures
    if not web.public_url and any(v in usb for v in village_ids) and report.files:
        report.alerts.append(NO_PUBLIC_URL)
