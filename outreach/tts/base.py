"""The engine-neutral TTS interface: the Synthesizer protocol, its result, and shared checks."""

from __future__ import annotations

import logging
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from outreach.config import RenderSettings
from outreach.errors import OutputError, SynthesisFailed, UnknownVoice
from outreach.files import atomic_path, describe_os_error
from outreach.tts.voices import voices_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SynthesisResult:
    """One audio file an engine wrote.

    `fmt` is the container to pass to `ffmpeg -f` ("wav" or "mp3"); `engine`
    is the engine that really produced the audio, which differs from the one
    asked for when a fallback stepped in.
    """

    path: Path
    fmt: str
    engine: str
    voice: str


@runtime_checkable
class Synthesizer(Protocol):
    """A TTS engine: turns text into one audio file."""

    name: str

    def synthesize(self, text: str, voice: str | None, out_base: Path, *, rate: float | None = None) -> SynthesisResult:
        """Write `out_base` with the engine's suffix (".wav"/".mp3"); `voice` None is the engine default.

        `rate` is the speaking rate in Hanzi per second; None is the configured render.rate.

        Raises:
            UnknownVoice: the engine does not offer `voice`.
            SynthesisFailed: no audio could be produced.
            OutputError: the audio file could not be written.
        """
        ...


def require_text(text: str, engine: str) -> str:
    """Return `text` stripped; raise SynthesisFailed if nothing is left to speak.

    Raises:
        SynthesisFailed: `text` is empty or only whitespace.
    """
    stripped = text.strip() if isinstance(text, str) else ""
    if not stripped:
        raise SynthesisFailed(f"{engine}: 文字是空的；请给广播稿写上要念的内容")
    return stripped


def check_voice(engine: str, voice: str, extra_ok: Callable[[str], bool] | None = None) -> str:
    """Return `voice` if `engine` offers it (per the catalogue, or `extra_ok`).

    Raises:
        UnknownVoice: naming the voice, the engine and the valid voices.
    """
    names = [v.name for v in voices_for(engine)]
    if voice in names or (extra_ok is not None and extra_ok(voice)):
        return voice
    raise UnknownVoice(
        f"{engine} 引擎没有音色 '{voice}'；请从以下音色中选一个：{', '.join(names)}"
    )


def write_wav(target: Path, samples: Any, sample_rate: int) -> None:
    """Write mono 16-bit `samples` to `target` atomically.

    Raises:
        OutputError: the file or its folder cannot be written.
    """
    with atomic_path(target) as tmp:
        try:
            with wave.open(str(tmp), "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(sample_rate)
                out.writeframes(samples.tobytes())
        except OSError as exc:
            raise OutputError(describe_os_error(target, exc)) from exc


class WavSynthesizer:
    """An engine that computes its samples in this process and writes them as WAV (neural, kokoro).

    A subclass sets `name` and `sample_rate` and computes `samples`; checking the voice (its default:
    RenderSettings.default_voice) and the text, and writing the file, are here.
    """

    name: str
    sample_rate: int

    def __init__(self, settings: RenderSettings, cache_dir: Path | None = None) -> None:
        self.settings = settings
        self.cache_dir = cache_dir

    def samples(self, text: str, voice: str, rate: float) -> Any:
        """The speech of `text` (stripped, not empty) in `voice` at `rate` Hanzi/s, as 16-bit samples."""
        raise NotImplementedError

    def synthesize(self, text: str, voice: str | None, out_base: Path, *, rate: float | None = None) -> SynthesisResult:
        """Speak `text` into `out_base`.wav at `rate` Hanzi/s (None: settings.rate); `voice` None: the default.

        Raises:
            UnknownVoice: the engine does not offer `voice`.
            SynthesisFailed: the text is empty, has no Hanzi, or the engine is not installed.
            OutputError: the WAV file cannot be written.
        """
        voice = check_voice(self.name, voice or self.settings.default_voice(self.name))
        samples = self.samples(require_text(text, self.name), voice, rate or self.settings.rate)
        target = Path(out_base).with_suffix(".wav")
        write_wav(target, samples, self.sample_rate)
        return SynthesisResult(path=target, fmt="wav", engine=self.name, voice=voice)


@dataclass(frozen=True)
class EngineSpec:
    """What the rest of outreach may know about one engine; each engine module declares its own as SPEC.

    `version` is what else changes the engine's sound for the same text and settings (model files,
    seeds, pauses): it goes into every clip's cache key, so changing it re-renders that engine's clips.
    `prosody` adds engine-only settings to the cache key's prosody. `fallback` names the engine that
    speaks when this one fails (None: nobody). `prepare` makes slow shared state once (the neural
    model) before a pool of worker processes renders in parallel.
    """

    name: str
    offline: bool
    factory: Callable[[RenderSettings, Path | None], Synthesizer]
    version: str = ""
    prosody: Callable[[RenderSettings, float], dict[str, object]] = lambda settings, rate: {}
    fallback: Callable[[RenderSettings], str | None] = lambda settings: None
    prepare: Callable[[Path], object] | None = None


class FallbackSynthesizer:
    """Try `primary`; if it fails (not for an unknown voice), speak with `fallback`'s default voice.

    Chains nest: edge -> neural -> espeak is FallbackSynthesizer(edge, FallbackSynthesizer(neural, espeak)).
    """

    def __init__(self, primary: Synthesizer, fallback: Synthesizer) -> None:
        self.primary = primary
        self.fallback = fallback
        self.name = primary.name

    def synthesize(self, text: str, voice: str | None, out_base: Path, *, rate: float | None = None) -> SynthesisResult:
        """Synthesize with the primary engine, or with the fallback engine when it fails.

        The result's `engine` names the engine that really spoke.

        Raises:
            UnknownVoice: the primary engine does not offer `voice` (a config mistake, not an outage).
            SynthesisFailed: both engines failed.
            OutputError: the audio file could not be written.
        """
        try:
            return self.primary.synthesize(text, voice, out_base, rate=rate)
        except UnknownVoice:
            raise
        except SynthesisFailed as exc:
            log.warning("%s 引擎失败（%s）；改用备用的 %s 引擎", self.primary.name, exc, self.fallback.name)
            try:
                return self.fallback.synthesize(text, None, out_base, rate=rate)
            except SynthesisFailed as again:
                raise SynthesisFailed(f"{exc}；备用的 {self.fallback.name} 引擎也失败了：{again}") from again
