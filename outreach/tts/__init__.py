"""Text-to-speech: one Synthesizer interface over the neural, espeak and edge engines.

The neural engine's heavy parts (LiteRT, the model) load on first use, so importing this
package stays cheap.
"""

from __future__ import annotations

from pathlib import Path

from outreach.config import RenderSettings
from outreach.errors import SynthesisFailed
from outreach.tts.base import FallbackSynthesizer, SynthesisResult, Synthesizer
from outreach.tts.edge import EdgeSynthesizer
from outreach.tts.espeak import EspeakSynthesizer
from outreach.tts.neural import NeuralSynthesizer
from outreach.tts.voices import ALL_VOICES, Voice

__all__ = [
    "ENGINES",
    "EdgeSynthesizer",
    "EspeakSynthesizer",
    "FallbackSynthesizer",
    "NeuralSynthesizer",
    "SynthesisResult",
    "Synthesizer",
    "Voice",
    "get_synthesizer",
    "list_voices",
]

# Real engines; "offline" is accepted too and means render.offline_engine.
ENGINES = ("neural", "espeak", "edge")


def _offline(engine: str, settings: RenderSettings, cache_dir: Path | None) -> Synthesizer:
    if engine == "espeak":
        return EspeakSynthesizer(settings)
    # The neural engine falls back to espeak: a hard-to-understand voice beats silence.
    return FallbackSynthesizer(NeuralSynthesizer(settings, cache_dir), EspeakSynthesizer(settings))


def get_synthesizer(engine: str, settings: RenderSettings, cache_dir: Path | None = None) -> Synthesizer:
    """The synthesizer for `engine`, with its fallback chain: edge -> neural -> espeak.

    `engine` "offline" means settings.offline_engine. Edge falls back to the offline engine when
    settings.edge.fallback_to_offline. `cache_dir` keeps the neural engine's rewritten model
    (the build folder's models/; None: the user's cache folder).

    Raises:
        SynthesisFailed: `engine` is not one of "neural", "espeak", "edge", "offline".
    """
    real = settings.resolve_engine(engine)
    if real in ("neural", "espeak"):
        return _offline(real, settings, cache_dir)
    if real == "edge":
        edge = EdgeSynthesizer(settings)
        if settings.edge.fallback_to_offline:
            return FallbackSynthesizer(edge, _offline(settings.offline_engine, settings, cache_dir))
        return edge
    raise SynthesisFailed(f"未知的语音引擎 '{engine}'；请从 {', '.join(ENGINES)}, offline 中选一个")


def list_voices() -> list[Voice]:
    """Every voice of every engine, from the offline catalogue."""
    return list(ALL_VOICES)
