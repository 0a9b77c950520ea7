"""USB packs as the dashboard lists them: the export folder's files, pack ZIPs, and packs the plan has made stale."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from outreach.config import TZ, Config
from outreach.delivery.usb.packs import PackFile, read_manifest
from outreach.delivery.usb.stale import StalePack, exports_stamp, plan_stamp, refresh_stale
from outreach.delivery.usb.stale import stale_packs as stored_stale_packs
from outreach.delivery.usb.zipped import PackZip, export_zip, zip_ranges
from outreach.errors import OutputError, OutreachError
from outreach.planning.workspace import load
from outreach.web.data_places import villages

log = logging.getLogger("outreach.web")


@dataclass(frozen=True)
class PackEntry(PackFile):
    """A manifest entry whose file is in the export folder, with the file's size for the listing."""

    size: int


def packs_dir(config: Config) -> Path:
    return (config.workspace / config.deliver.export_dir).resolve()


def pack_entries(config: Config) -> tuple[list[PackEntry], str]:
    """Files in the pack manifest that exist, and a problem message if the manifest is unusable."""
    root = packs_dir(config)
    try:
        listed = read_manifest(root)
    except OutputError as exc:
        return [], str(exc)
    out = []
    for f in listed.values():
        try:
            target = pack_file(root, f.path)  # None for a missing file or a path out of the folder
            if target is not None:
                out.append(PackEntry(**vars(f), size=target.stat().st_size))
        except (OSError, ValueError):
            continue
    out.sort(key=lambda e: (e.date, e.village_id, e.slot, e.path), reverse=False)
    return out, ""


def pack_file(root: Path, rel: str) -> Path | None:
    """The file at `rel` under `root`, or None if it is missing or would lie outside `root`."""
    if not rel or "\x00" in rel or Path(rel).is_absolute():
        return None
    target = (root / rel).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        return None
    return target


def find_pack_file(config: Config, rel: str) -> tuple[Path, PackEntry] | None:
    """A downloadable file: listed in manifest.json and inside the export folder."""
    entries, _ = pack_entries(config)
    entry = next((e for e in entries if e.path == rel), None)
    if entry is None:
        return None
    path = pack_file(packs_dir(config), entry.path)
    return (path, entry) if path is not None else None


def pack_zip(config: Config, engine: Engine, village_ids: Collection[str], *, now: datetime) -> PackZip:
    """The pack `outreach export` would write for these villages' listed days from today on, ready to zip.

    Raises OutreachError when the workspace cannot be planned or the pack could not be made whole.
    """
    entries, _ = pack_entries(config)
    ranges = zip_ranges(entries, set(village_ids), today=now.astimezone(TZ).date())
    return export_zip(load(config), engine, ranges, now=now)


# --- stale USB packs -----------------------------------------------------------------------

# The last stale check per database: (what it depended on, what it found).
_STALE_SEEN: dict[str, tuple[tuple[Any, ...], list[StalePack]]] = {}


def stale_packs(config: Config, engine: Engine, now: datetime) -> list[StalePack]:
    """USB packs the plan has changed since their export (节目包已过期), in airing order.

    Planned again only when a workspace file, the exported rows or the day changed since the
    last look; on a workspace that cannot be planned, what the last check wrote.
    """
    today = now.astimezone(TZ).date()
    stamp = (plan_stamp(config), exports_stamp(engine, today=today), today)
    key = config.resolved_database_url()
    seen = _STALE_SEEN.get(key)
    if seen is not None and seen[0] == stamp:
        return seen[1]
    try:
        packs = refresh_stale(load(config), engine, now=now)
    except OutreachError as exc:
        log.warning("检查U盘节目包是否过期失败：%s", exc)
        return stored_stale_packs(engine, today=today)
    _STALE_SEEN[key] = ((plan_stamp(config), exports_stamp(engine, today=today), today), packs)
    return packs


@dataclass(frozen=True)
class StaleVillage:
    """A village whose USB pack is stale: its name and its stale programs in airing order."""

    village_id: str
    name: str
    packs: list[StalePack]


def stale_villages(config: Config, engine: Engine, now: datetime) -> list[StaleVillage]:
    """`stale_packs` by village, in the order of each village's first stale program (今天 and 节目包 pages)."""
    by_village: dict[str, list[StalePack]] = {}
    for p in stale_packs(config, engine, now):
        by_village.setdefault(p.village_id, []).append(p)
    names = {v.id: v.name for v in villages(engine)} if by_village else {}
    return [StaleVillage(vid, names.get(vid, vid), packs) for vid, packs in by_village.items()]


def stale_index(stale: Sequence[StaleVillage]) -> dict[str, dict[tuple[str, str], str]]:
    """What changed, by village id and (ISO date, slot): how the pack listing marks a stale file."""
    return {v.village_id: {(p.day.isoformat(), p.slot): p.reason for p in v.packs} for v in stale}
