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


NEURAL_VOICES: tuple[Voice, ...] = (
    Voice("neural", "baker", "zh-CN", "Female", "标贝女声，FastSpeech2 + MB-MelGAN 神经网络合成，离线，清晰（默认）"),
)

# Kokoro-82M's voices were made for Japanese; jm_kumo reads misaki's Mandarin phonemes best (issue 19).
KOKORO_VOICES: tuple[Voice, ...] = (
    Voice("kokoro", "jm_kumo", "zh-CN", "Male", "Kokoro-82M 男声，离线，模型可商用（Apache-2.0），比 neural 稍难听清、合成慢约十二倍"),
)

ESPEAK_VOICES: tuple[Voice, ...] = (
    Voice("espeak", "cmn", "zh-CN", "Male", "espeak-ng 普通话，机器音，难听懂，仅作最后备用"),
    Voice("espeak", "cmn+f3", "zh-CN", "Female", "espeak-ng 普通话 女声，机器音，仅作最后备用"),
    Voice("espeak", "cmn-latn-pinyin", "zh-CN", "Male", "espeak-ng 拼音输入"),
)

# edge-tts cannot list voices offline; these are its Mandarin voices.
EDGE_VOICES: tuple[Voice, ...] = (
    Voice("edge", "zh-CN-XiaoxiaoNeural", "zh-CN", "Female", "晓晓 温暖女声，需联网"),
    Voice("edge", "zh-CN-XiaoyiNeural", "zh-CN", "Female", "晓伊 活泼女声，需联网"),
    Voice("edge", "zh-CN-YunjianNeural", "zh-CN", "Male", "云健 激情男声，需联网"),
    Voice("edge", "zh-CN-YunxiNeural", "zh-CN", "Male", "云希 阳光男声，需联网"),
    Voice("edge", "zh-CN-YunxiaNeural", "zh-CN", "Male", "云夏 可爱童声，需联网"),
    Voice("edge", "zh-CN-YunyangNeural", "zh-CN", "Male", "云扬 新闻播报男声，需联网"),
    Voice("edge", "zh-CN-liaoning-XiaobeiNeural", "zh-CN-liaoning", "Female", "晓北 东北话女声，需联网"),
    Voice("edge", "zh-CN-shaanxi-XiaoniNeural", "zh-CN-shaanxi", "Female", "晓妮 陕西话女声，需联网"),
)

ALL_VOICES: tuple[Voice, ...] = NEURAL_VOICES + ESPEAK_VOICES + EDGE_VOICES + KOKORO_VOICES


def voices_for(engine: str) -> tuple[Voice, ...]:
    """The voices of one engine ("neural", "espeak", "edge" or "kokoro")."""
    return tuple(v for v in ALL_VOICES if v.engine == engine)


def is_known_voice(name: str) -> bool:
    """True when some engine offers a voice of this name."""
    return any(v.name == name for v in ALL_VOICES)


def engine_of_voice(name: str) -> str | None:
    """The engine that offers `name`, or None."""
    return next((v.engine for v in ALL_VOICES if v.name == name), None)
