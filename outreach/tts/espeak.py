"""The espeak engine: libespeak-ng (bundled by espeakng-loader) through ctypes; offline, a last resort.

Its Mandarin is hard to understand (about 68% character error rate under a speech recogniser,
against 9% for the neural engine), so it speaks only when the neural engine cannot.
"""

from __future__ import annotations

import array
import ctypes
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from outreach.config import RenderSettings
from outreach.errors import SynthesisFailed
from outreach.tts.base import EngineSpec, SynthesisResult, check_voice, require_text, write_wav

ENGINE = "espeak"
# espeak-ng words per minute per Hanzi-per-second asked for (measured: 150 wpm speaks ~2.9 Hanzi/s
# of the sample library, pauses included).
WPM_PER_RATE = 52.0

# espeak-ng's speak_lib.h constants.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1
_PARAM_VOLUME = 2
# espeak-ng's default volume (100) clips its loudest syllables; leave headroom,
# mastering brings the level back up cleanly.
_VOLUME = 60
_EE_OK = 0

_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


@dataclass
class _Espeak:
    """The loaded library and its process-wide state (espeak-ng is one global engine)."""

    lib: ctypes.CDLL
    sample_rate: int
    data_path: Path
    sink: array.array | None = None


_LOCK = threading.Lock()
_ENGINE: _Espeak | None = None


def _on_samples(wav: ctypes._Pointer, n_samples: int, _events: ctypes.c_void_p) -> int:
    """espeak-ng hands each block of 16-bit samples here; 0 means carry on."""
    engine = _ENGINE
    if engine is not None and engine.sink is not None and wav and n_samples > 0:
        engine.sink.frombytes(ctypes.string_at(wav, n_samples * 2))
    return 0


# Module-level so the ctypes thunk outlives every call the library makes into it.
_CALLBACK = _SynthCallback(_on_samples)


def _load() -> _Espeak:
    """Load and initialise libespeak-ng once per process. Call with _LOCK held.

    Raises:
        SynthesisFailed: the library or its data cannot be loaded.
    """
    global _ENGINE
    if _ENGINE is not None:
        return _ENGINE
    try:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data_path = espeakng_loader.get_data_path()
    except (ImportError, OSError, RuntimeError) as exc:
        raise SynthesisFailed(f"espeak: 无法加载 libespeak-ng（{exc}）；请重新安装 espeakng-loader") from exc
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
        ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.argtypes = []
    lib.espeak_Synchronize.restype = ctypes.c_int
    sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(sys.getfilesystemencoding()), 0)
    if sample_rate <= 0:
        raise SynthesisFailed(f"espeak: libespeak-ng 用 {data_path} 的数据初始化失败；请重新安装 espeakng-loader")
    lib.espeak_SetSynthCallback(_CALLBACK)
    _ENGINE = _Espeak(lib=lib, sample_rate=sample_rate, data_path=Path(data_path))
    return _ENGINE


def _is_variant_of_known_voice(voice: str) -> bool:
    """True for `base+variant` where base is an offline voice and the variant ships with espeak-ng."""
    base, plus, variant = voice.partition("+")
    if not plus or not variant or "/" in variant or variant.startswith("."):
        return False
    try:
        check_voice(ENGINE, base)
        import espeakng_loader

        return (Path(espeakng_loader.get_data_path()) / "voices" / "!v" / variant).is_file()
    except (SynthesisFailed, RuntimeError, ImportError):
        return False


def render_samples(text: str, voice: str, rate_wpm: int) -> tuple[array.array, int]:
    """Speak `text` with espeak-ng; return mono 16-bit samples and the sample rate.

    Raises:
        SynthesisFailed: the library rejects the voice or the text, or produces no audio.
    """
    data = text.encode("utf-8")
    with _LOCK:
        engine = _load()
        lib = engine.lib
        if lib.espeak_SetVoiceByName(voice.encode("utf-8")) != _EE_OK:
            raise SynthesisFailed(f"espeak: {engine.data_path} 里没有 espeak-ng 音色 '{voice}'；请运行 `outreach voices` 查看可用音色")
        # The rate is set after the voice because selecting a voice resets it.
        lib.espeak_SetParameter(_PARAM_RATE, rate_wpm, 0)
        lib.espeak_SetParameter(_PARAM_VOLUME, _VOLUME, 0)
        samples = array.array("h")
        engine.sink = samples
        try:
            status = lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            lib.espeak_Synchronize()
        finally:
            engine.sink = None
        sample_rate = engine.sample_rate
    if status != _EE_OK:
        raise SynthesisFailed(f"espeak: espeak-ng 念不出这段文字（错误码 {status}）")
    if not samples or not any(samples):
        raise SynthesisFailed(f"espeak: espeak-ng 没有为 {text[:30]!r} 生成任何声音；请确认文字里有可念的内容")
    if sys.byteorder == "big":
        samples.byteswap()  # WAV is little-endian.
    return samples, sample_rate


def wpm_for(rate: float) -> int:
    """espeak-ng's words-per-minute setting for `rate` Hanzi per second."""
    return max(80, min(450, round(rate * WPM_PER_RATE)))


class EspeakSynthesizer:
    """Mandarin speech from espeak-ng, with no network; writes WAV."""

    name = ENGINE

    def __init__(self, settings: RenderSettings) -> None:
        self.settings = settings

    def synthesize(self, text: str, voice: str | None, out_base: Path, *, rate: float | None = None) -> SynthesisResult:
        """Speak `text` into `out_base`.wav at `rate` Hanzi/s (None: settings.rate); `voice` None: settings.espeak_voice.

        Raises:
            UnknownVoice: `voice` is not an espeak voice (nor a `base+variant` of one).
            SynthesisFailed: the text is empty or espeak-ng produced no audio.
            OutputError: the WAV file cannot be written.
        """
        voice = check_voice(ENGINE, voice or self.settings.espeak_voice, _is_variant_of_known_voice)
        spoken = require_text(text, ENGINE)
        samples, sample_rate = render_samples(spoken, voice, wpm_for(rate or self.settings.rate))
        target = Path(out_base).with_suffix(".wav")
        write_wav(target, samples, sample_rate)
        return SynthesisResult(path=target, fmt="wav", engine=ENGINE, voice=voice)


SPEC = EngineSpec(name=ENGINE, offline=True, factory=lambda settings, cache_dir: EspeakSynthesizer(settings))
