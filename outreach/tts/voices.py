"""The voice catalogue of every engine, known without a network."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Voice:
    """One voice an engine offers."""

    engine: str
    name: str
    locale: str
    gender: str
    description: str


OFFLINE_VOICES: tuple[Voice, ...] = (
    Voice("offline", "cmn", "zh-CN", "Male", "espeak-ng 普通话（默认）"),
    Voice("offline", "cmn+f3", "zh-CN", "Female", "espeak-ng 普通话 女声"),
    Voice("offline", "cmn-latn-pinyin", "zh-CN", "Male", "espeak-ng 拼音输入"),
)

# edge-tts cannot list voices offline; these are its Mandarin voices.
EDGE_VOICES: tuple[Voice, ...] = (
    Voice("edge", "zh-CN-XiaoxiaoNeural", "zh-CN", "Female", "晓晓 温暖"),
    Voice("edge", "zh-CN-XiaoyiNeural", "zh-CN", "Female", "晓伊 活泼"),
    Voice("edge", "zh-CN-YunjianNeural", "zh-CN", "Male", "云健 激情"),
    Voice("edge", "zh-CN-YunxiNeural", "zh-CN", "Male", "云希 阳光"),
    Voice("edge", "zh-CN-YunxiaNeural", "zh-CN", "Male", "云夏 可爱"),
    Voice("edge", "zh-CN-YunyangNeural", "zh-CN", "Male", "云扬 新闻播报"),
    Voice("edge", "zh-CN-liaoning-XiaobeiNeural", "zh-CN-liaoning", "Female", "晓北 东北话"),
    Voice("edge", "zh-CN-shaanxi-XiaoniNeural", "zh-CN-shaanxi", "Female", "晓妮 陕西话"),
)

ALL_VOICES: tuple[Voice, ...] = OFFLINE_VOICES + EDGE_VOICES


def voices_for(engine: str) -> tuple[Voice, ...]:
    """The voices of one engine ("offline" or "edge")."""
    return tuple(v for v in ALL_VOICES if v.engine == engine)


def is_known_voice(name: str) -> bool:
    """True when some engine offers a voice of this name."""
    return any(v.name == name for v in ALL_VOICES)


def engine_of_voice(name: str) -> str | None:
    """The engine that offers `name`, or None."""
    return next((v.engine for v in ALL_VOICES if v.name == name), None)
