"""What a loudspeaker script is: the `Script` model, its fields and limits, and the approval hash that seals it."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from outreach.config import RATE_RANGE, RECORDING_ENGINE, SCRIPT_ENGINE_CHOICES

__all__ = ["ENGINES", "FIELDS", "ID_PATTERN", "MAX_TITLE", "MIN_HANZI", "PRIORITY_RANGE", "RECORDING_EXTENSIONS",
           "RECORDINGS_DIR", "REPEAT_RANGE", "REQUIRED", "STATUSES", "TOPICS", "Script", "approval_hash",
           "recording_name"]

Topic = Literal["traffic", "anti_fraud"]
Engine = Literal[SCRIPT_ENGINE_CHOICES]  # type: ignore[valid-type]  # offline: render.offline_engine
Status = Literal["draft", "approved"]

TOPICS: tuple[str, ...] = get_args(Topic)
ENGINES: tuple[str, ...] = get_args(Engine)
STATUSES: tuple[str, ...] = get_args(Status)
REPEAT_RANGE = (1, 5)
PRIORITY_RANGE = (1, 9)
ID_PATTERN = r"[a-z0-9-]+"
FIELDS = (
    "id", "topic", "title", "voice", "engine", "repeat", "priority",
    "valid_from", "valid_until", "status", "approved_by", "approved_on", "approval_hash",
    "rate", "recording", "recording_sha256",
)
REQUIRED = ("id", "topic", "title", "repeat", "priority", "status")
# A body needs this much spoken Chinese: a body of emoji or digits renders only a chime.
MIN_HANZI = 5
# One cap for a title everywhere (the `scripts check` rules, the browser form, `scripts approve`).
MAX_TITLE = 100
# A recording script (engine: recording) airs an uploaded human voice, kept beside the scripts as
# recordings/<id>-<sha256[:12]>.<ext>; its text stays for review (what the recording says). The name
# carries the checksum, so a new recording is written beside the old one and the script switched
# in one rename: the library never holds a script whose recording is half replaced.
RECORDINGS_DIR = "recordings"
RECORDING_EXTENSIONS = ("mp3", "wav", "m4a")


def recording_name(script_id: str, sha256: str, ext: str) -> str:
    """The front matter `recording:` value of a script's recording: recordings/<id>-<sha256[:12]>.<ext>."""
    return f"{RECORDINGS_DIR}/{script_id}-{sha256[:12]}.{ext}"


def approval_hash(text: str, title: str, voice: str | None, engine: str | None, rate: str | None = None,
                  recording: str | None = None) -> str:
    """What an approval seals: 16 hex digits over the text, title, voice, engine, rate and recording (if set).

    `recording` is the sha256 of a recording script's audio file, so replacing the recording voids
    the approval just as editing the text does.
    """
    sealed: dict[str, Any] = {"text": text, "title": title, "voice": voice, "engine": engine}
    if rate is not None:
        sealed["rate"] = rate
    if recording is not None:
        sealed["recording_sha256"] = recording
    return hashlib.sha256(json.dumps(sealed, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


class Script(BaseModel):
    """One validated loudspeaker script and its review state."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=f"^{ID_PATTERN}$")
    topic: Topic
    title: str = Field(min_length=1)
    text: str = Field(min_length=1)
    voice: str | None = None
    engine: Engine | None = None
    rate: float | None = Field(None, ge=RATE_RANGE[0], le=RATE_RANGE[1])  # Hanzi per second
    repeat: int = Field(ge=REPEAT_RANGE[0], le=REPEAT_RANGE[1])
    priority: int = Field(ge=PRIORITY_RANGE[0], le=PRIORITY_RANGE[1])
    valid_from: date | None = None
    valid_until: date | None = None
    status: Status
    approved_by: str | None = None
    approved_on: date | None = None
    # The approval_hash written by `approve_script`; an edit since then voids the approval.
    approval_hash: str | None = None
    # engine: recording only: the audio file (recordings/<id>.<ext>) and its sha256, which approval seals.
    recording: str | None = None
    recording_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    path: Path

    @model_validator(mode="after")
    def _cross_fields(self) -> Script:
        if self.valid_from and self.valid_until and self.valid_from > self.valid_until:
            raise ValueError("valid_from 晚于 valid_until")
        if self.status == "approved" and not (self.approved_by and self.approved_on):
            raise ValueError("已批准的广播稿必须有 approved_by 和 approved_on")
        return self

    @property
    def content_hash(self) -> str:
        """The approval hash of the script as it is now."""
        return approval_hash(self.text, self.title, self.voice, self.engine, getattr(self, "rate", None),
                             self.recording_sha256)

    @property
    def is_recording(self) -> bool:
        """True when the script airs an uploaded recording instead of a synthesised voice."""
        return self.engine == RECORDING_ENGINE

    @property
    def recording_path(self) -> Path | None:
        """The recording's audio file (beside the script files), or None for a TTS script."""
        return self.path.parent / self.recording if self.recording else None

    @property
    def edited_after_approval(self) -> bool:
        """True when the script was approved and has been changed since, so the approval no longer holds.

        Either the text, title, voice, engine or rate no longer match the recorded approval_hash,
        or the browser editor saved it as a draft and kept the record of the approval it voided
        (`status: draft` with approved_by and approved_on).
        """
        if self.approved_by is None or self.approved_on is None:
            return False
        if self.status == "draft":
            return True
        return self.approval_hash is not None and self.approval_hash != self.content_hash

    @property
    def approved(self) -> bool:
        """True when the text has been reviewed, unchanged since, and may go on air."""
        return self.status == "approved" and not self.edited_after_approval

    @property
    def review_note(self) -> str | None:
        """Why an approved-looking script is a draft again, for `scripts check`; None otherwise."""
        if not self.edited_after_approval:
            return None
        return (f"{self.approved_by} 于 {self.approved_on} 批准后又被修改过，已退回草稿，重新批准前不会播出；"
                f"请运行 `outreach scripts approve {self.id} --by 姓名`")

    def valid_on(self, day: date) -> bool:
        """True when `day` lies within valid_from..valid_until (open ends allowed)."""
        if self.valid_from is not None and day < self.valid_from:
            return False
        return self.valid_until is None or day <= self.valid_until
