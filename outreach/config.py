"""Workspace settings (outreach.toml), loaded and validated once into typed models."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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

    rate: str = Field("+0%", pattern=r"^[+-]\d+%$")
    volume: str = Field("+0%", pattern=r"^[+-]\d+%$")
    pitch: str = Field("+0Hz", pattern=r"^[+-]\d+Hz$")
    timeout_s: float = Field(20.0, gt=0, le=300)
    retries: int = Field(3, ge=1, le=10)
    backoff_s: float = Field(1.0, ge=0, le=60)
    fallback_to_offline: bool = True


class RenderSettings(_Strict):
    """Which engine speaks, and how a clip is laid out."""

    engine: Literal["offline", "edge"] = "offline"
    offline_voice: str = "cmn"
    edge_voice: str = "zh-CN-XiaoxiaoNeural"
    offline_rate_wpm: int = Field(150, ge=80, le=400)
    chime: bool = True
    pause_s: float = Field(1.5, ge=0, le=10)
    max_chars: int = Field(400, ge=20, le=2000)
    edge: EdgeSettings = EdgeSettings()


class DeliverSettings(_Strict):
    """How programs reach loudspeakers: played at slot time or exported."""

    mode: Literal["play", "export"] = "play"
    player: list[str] = ["ffplay", "-nodisp", "-autoexit", "-loglevel", "error", "{file}"]
    player_timeout_s: float = Field(1800, gt=0)
    grace_s: int = Field(900, ge=0, le=6 * 3600)
    export_hour: int = Field(20, ge=0, le=23)
    export_dir: str = "packs"


class Config(_Strict):
    """Everything a workspace configures. Paths are relative to the workspace."""

    workspace: Path
    database_url: str = "sqlite:///outreach.db"
    build_dir: str = "build"
    render: RenderSettings = RenderSettings()
    profile: MasteringProfile = MasteringProfile()
    deliver: DeliverSettings = DeliverSettings()

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
