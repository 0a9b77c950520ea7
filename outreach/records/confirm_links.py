"""QR confirmation links: a token per village pack, bound to that village's exported programs in a date range.

The token travels on the stick (扫码确认.png) and opens `/c/<token>` on a phone with no
login. Only its SHA-256 is stored (models.ConfirmToken). A link confirms only rows that
were exported no later than the link was bound to the pack (`created_at`): a program
exported again after that may differ from what the stick with this QR carries.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlmodel import Session

from outreach.config import TZ
from outreach.errors import RecordError
from outreach.models import Broadcast, BroadcastStatus, ConfirmToken
from outreach.records.broadcasts import require_aware
from outreach.records.confirmations import confirm_program

__all__ = ["ENTERED_BY_QR", "LINK_PATH", "TOKEN_PATTERN", "LinkError", "LinkProgram", "token_sha256", "link_url",
           "link_expiry", "last_valid_day", "issue_link", "rebind_link", "open_link", "revoke_links", "list_links",
           "link_programs",
           "confirm_by_link"]

ENTERED_BY_QR = "扫码"
"""`entered_by` of a confirmation made on the QR page."""
LINK_PATH = "/c/"
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{20,64}")
_TOKEN_BYTES = 16  # 128 bits: short enough for a small QR code, far too many to guess


class LinkError(RecordError):
    """A QR link that does not exist, was revoked, or has expired; `status` is the HTTP status to show."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def token_sha256(token: str) -> str:
    """What is stored of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def link_url(public_url: str, token: str) -> str:
    """The address a QR code holds: `public_url` + /c/ + token."""
    return f"{public_url.rstrip('/')}{LINK_PATH}{token}"


def link_expiry(last_day: dt.date, valid_days: int) -> dt.datetime:
    """The end of `last_day` in the county, plus `valid_days` days."""
    return dt.datetime.combine(last_day + dt.timedelta(days=1 + valid_days), dt.time(0), tzinfo=TZ)


def last_valid_day(expires_at: dt.datetime) -> dt.date:
    """The last county day on which a link expiring at `expires_at` still works (for 有效期到 …)."""
    return (expires_at - dt.timedelta(microseconds=1)).astimezone(TZ).date()


def issue_link(session: Session, *, village_id: str, first_day: dt.date, last_day: dt.date, now: dt.datetime,
               valid_days: int) -> str:
    """A new random token for one village's exported programs from `first_day` to `last_day`; only its hash is kept.

    It expires `valid_days` days after `last_day` ends (Beijing time).
    """
    require_aware("now", now)
    if last_day < first_day:
        raise ValueError(f"二维码的日期范围前后颠倒了：{first_day}..{last_day}")
    token = secrets.token_urlsafe(_TOKEN_BYTES)
    session.add(ConfirmToken(token_sha256=token_sha256(token), village_id=village_id, first_day=first_day,
                             last_day=last_day, created_at=now, expires_at=link_expiry(last_day, valid_days)))
    session.flush()
    return token


def rebind_link(session: Session, token: str, *, village_id: str, first_day: dt.date, last_day: dt.date,
                now: dt.datetime, valid_days: int) -> bool:
    """Bind an existing token again to a pack re-exported unchanged; False if it cannot serve this pack.

    A token already on the stick stays valid (the printed sheet too) when it belongs to the same
    village and days and is neither revoked nor expired; it is bound to the programs as logged now.
    """
    require_aware("now", now)
    if not TOKEN_PATTERN.fullmatch(token):
        return False
    row = session.get(ConfirmToken, token_sha256(token))
    if (row is None or row.revoked_at is not None or row.expires_at <= now or row.village_id != village_id
            or (row.first_day, row.last_day) != (first_day, last_day)):
        return False
    row.created_at, row.expires_at = now, link_expiry(last_day, valid_days)
    session.add(row)
    session.flush()
    return True


def open_link(session: Session, token: str, *, now: dt.datetime) -> ConfirmToken:
    """The link of `token`, if it may be used at `now`; else LinkError (404 unknown, 410 revoked or expired)."""
    require_aware("now", now)
    row = session.get(ConfirmToken, token_sha256(token)) if TOKEN_PATTERN.fullmatch(token) else None
    if row is None:
        raise LinkError("没有这个二维码链接。", 404)
    if row.revoked_at is not None:
        raise LinkError(f"这个二维码已在 {row.revoked_at.astimezone(TZ):%Y-%m-%d %H:%M} 停用。", 410)
    if row.expires_at <= now:
        raise LinkError(f"这个二维码已过期（有效期到 {row.expires_at.astimezone(TZ):%Y-%m-%d %H:%M}）。", 410)
    return row


def revoke_links(session: Session, village_id: str, *, now: dt.datetime) -> int:
    """Revoke every link of a village not yet revoked (expired ones too); returns how many."""
    require_aware("now", now)
    stmt = (sa.update(ConfirmToken).where(ConfirmToken.village_id == village_id, ConfirmToken.revoked_at.is_(None))
            .values(revoked_at=now))
    return int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def list_links(session: Session, *, village_id: str | None = None) -> list[ConfirmToken]:
    """Links, newest first; of one village when given."""
    q = sa.select(ConfirmToken).order_by(ConfirmToken.created_at.desc(), ConfirmToken.village_id)
    if village_id is not None:
        q = q.where(ConfirmToken.village_id == village_id)
    return list(session.scalars(q))


@dataclass
class LinkProgram:
    """One exported program a link may confirm, its campaign rows folded together."""

    day: dt.date
    slot: str
    scheduled_at: dt.datetime
    script_ids: list[str] = field(default_factory=list)
    exported_at: dt.datetime | None = None
    confirmed_at: dt.datetime | None = None
    confirmed_by: str = ""
    aired_at: dt.datetime | None = None
    confirmed: bool = False
    open: bool = False  # still exported: may be confirmed (once it has started)
    changed: bool = False  # exported again after the link was bound: the stick may carry an older version


def link_programs(session: Session, link: ConfirmToken) -> list[LinkProgram]:
    """The programs of the link's village and days that a stick carried (exported, or confirmed after export)."""
    rows = session.scalars(sa.select(Broadcast).where(
        Broadcast.village_id == link.village_id, Broadcast.date >= link.first_day, Broadcast.date <= link.last_day,
        Broadcast.exported_at.is_not(None),
        Broadcast.status.in_([BroadcastStatus.EXPORTED, BroadcastStatus.CONFIRMED]),
    ).order_by(Broadcast.scheduled_at, Broadcast.campaign_id))
    out: dict[tuple[dt.date, str], LinkProgram] = {}
    for b in rows:
        p = out.setdefault((b.date, b.slot), LinkProgram(b.date, b.slot, b.scheduled_at))
        p.script_ids += [s for s in b.script_ids.split(",") if s and s not in p.script_ids]
        if b.status == BroadcastStatus.EXPORTED:
            p.open = True
            p.changed = p.changed or (b.exported_at is not None and b.exported_at > link.created_at)
        else:
            p.confirmed = True
            p.confirmed_at, p.confirmed_by, p.aired_at = b.confirmed_at, b.confirmed_by or "", b.aired_at
        p.exported_at = max(filter(None, (p.exported_at, b.exported_at)))
    return sorted(out.values(), key=lambda p: (p.scheduled_at, p.slot))


def confirm_by_link(session: Session, token: str, *, day: dt.date, slot: str, confirmed_by: str,
                    now: dt.datetime) -> bool:
    """Confirm one program through a QR link, entered by 扫码; False if it was already confirmed.

    Raises LinkError for an unusable link, RecordError for a program the link does not carry
    (another day, not exported, exported again since) or one that has not started yet.
    """
    link = open_link(session, token, now=now)
    program = next((p for p in link_programs(session, link) if (p.day, p.slot) == (day, slot)), None)
    if program is None:
        raise RecordError(f"{day} 这个时段的节目不在这个二维码对应的U盘里；请只确认页面上列出的节目")
    if program.changed:
        raise RecordError("这个节目在二维码生成之后又重新导出过，系统不知道您U盘上的是哪一版；"
                          "请用新U盘文件夹里的二维码确认，或打电话告诉乡镇工作人员")
    if not program.open:
        return False
    return confirm_program(session, village_id=link.village_id, day=day, slot=slot, confirmed_by=confirmed_by,
                           entered_by=ENTERED_BY_QR, now=now, sources=[BroadcastStatus.EXPORTED])
