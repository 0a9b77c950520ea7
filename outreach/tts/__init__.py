"""Text-to-speech: one Synthesizer interface over the offline (espeak-ng) and edge (edge-tts) engines."""

from __future__ import annotations

from outreach.config import RenderSettings
from outreach.errors import SynthesisFailed
from outreach.tts.base import FallbackSynthesizer, SynthesisResult, Synthesizer
from outreach.tts.edge import EdgeSynthesizer
from outreach.tts.offline import OfflineSynthesizer
from outreach.tts.voices import ALL_VOICES, Voice

__all__ = [
    "EdgeSynthesizer",
    "FallbackSynthesizer",
    "OfflineSynthesizer",
    "SynthesisResult",
    "Synthesizer",
    "Voice",
    "get_synthesizer",
    "list_voices",
]

ENGINES = ("offline", "edge")


def get_synthesizer(engine: str, settings: RenderSettings) -> Synthesizer:
    """The synthesizer for `engine`; "edge" falls back to offline when settings.edge.fallback_to_offline.

    Raises:
        SynthesisFailed: `engine` is not one of "offline", "edge".
    """
    if engine == "offline":
        return OfflineSynthesizer(settings)
    if engine == "edge":
        edge = EdgeSynthesizer(settings)
        if settings.edge.fallback_to_offline:
            return FallbackSynthesizer(edge, OfflineSynthesizer(settings))
        return edge
    raise SynthesisFailed(f"unknown TTS engine '{engine}'; choose one of: {', '.join(ENGINES)}")


def list_voices() -> list[Voice]:
    """Every voice of every engine, from the offline catalogue."""
    return list(ALL_VOICES)
