"""The script library as the dashboard reads it, approval, and the ids of new scripts and campaigns."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from outreach.config import Config
from outreach.content.names import make_id
from outreach.content.script_model import Script
from outreach.content.script_writer import approve_script
from outreach.content.scripts import Problem, check_library, script_path
from outreach.db import session
from outreach.models import Broadcast, BroadcastScript, Campaign, ScriptEvent


def script_library(config: Config) -> tuple[list[Script], list[Problem]]:
    """Every valid script and every problem; never raises for a bad file."""
    return check_library(config.scripts_dir, max_chars=config.render.max_chars)


def script_titles(config: Config) -> dict[str, str]:
    """Script id → title, to show titles where a record holds ids."""
    return {s.id: s.title for s in script_library(config)[0]}


class _Taken:
    """The ids a new script or campaign must not take: those in its files, and any the database has
    records of (a reused id would inherit their review trail or their coverage)."""

    def __init__(self, engine: Engine, in_files: Collection[str], columns: Sequence[Any]) -> None:
        self.engine, self.in_files, self.columns = engine, set(in_files), columns

    def __contains__(self, ident: object) -> bool:
        if ident in self.in_files:
            return True
        with session(self.engine) as s:
            return any(s.execute(sa.select(sa.literal(1)).where(c == ident).limit(1)).first() for c in self.columns)


def new_script_id(config: Config, engine: Engine, title: str) -> str:
    """The id of a new script, made from its title (快递退款 → kuaidi-tuikuan), free in files and records."""
    files = {p.stem for p in Path(config.scripts_dir).glob("*.md")}
    return make_id(title, _Taken(engine, files, [ScriptEvent.script_id, BroadcastScript.script_id]),
                   fallback="script")


def new_campaign_id(engine: Engine, name: str, in_file: Collection[str]) -> str:
    """The id of a new campaign, made from its name, free in campaigns.yaml (`in_file`) and in records."""
    return make_id(name, _Taken(engine, in_file, [Campaign.id, Broadcast.campaign_id]), fallback="campaign")


def approve(config: Config, script_id: str, *, by: str, on: date) -> Script:
    """Approve a draft. Raises ScriptError for an unknown id, an approved or invalid script."""
    return approve_script(script_path(config.scripts_dir, script_id), by=by, on=on)
