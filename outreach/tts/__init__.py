"""Text-to-speech: one Synthesizer interface over the neural, espeak, edge and kokoro engines.

The offline engines' heavy parts (LiteRT, ONNX Runtime, the models) load on first use, so
importing this package stays cheap.
"""

from __future__ import annotations

from pathlib import Path

from outreach.config import ENGINE_NAMES, OFFLINE_ENGINE_NAMES, RenderSettings
from outreach.errors import SynthesisFailed
from outreach.tts import edge, espeak, kokoro, neural
from outreach.tts.base import EngineSpec, FallbackSynthesizer, SynthesisResult, Synthesizer
from outreach.tts.edge import EdgeSynthesizer
from outreach.tts.espeak import EspeakSynthesizer
from outreach.tts.kokoro import KokoroSynthesizer
from outreach.tts.neural import NeuralSynthesizer
from outreach.tts.voices import ALL_VOICES, Voice

__all__ = [
    "ENGINES",
    "REGISTRY",
    "EdgeSynthesizer",
    "EngineSpec",
    "EspeakSynthesizer",
    "FallbackSynthesizer",
    "KokoroSynthesizer",
    "NeuralSynthesizer",
    "SynthesisResult",
    "Synthesizer",
    "Voice",
    "engine_spec",
    "get_synthesizer",
    "list_voices",
]

# Every engine by name: a new engine is one module declaring its SPEC, one entry here, and its
# name in config.ENGINE_NAMES (which the ground checks settings and scripts against).
REGISTRY: dict[str, EngineSpec] = {spec.name: spec for spec in (neural.SPEC, espeak.SPEC, edge.SPEC, kokoro.SPEC)}
if tuple(REGISTRY) != ENGINE_NAMES or tuple(n for n, s in REGISTRY.items() if s.offline) != OFFLINE_ENGINE_NAMES:
    raise ImportError("tts.REGISTRY 与 config.ENGINE_NAMES / OFFLINE_ENGINE_NAMES 列出的引擎不一致；请两处一起改")

# Real engines; "offline" is accepted too and means render.offline_engine.
ENGINES = tuple(REGISTRY)


def engine_spec(engine: str) -> EngineSpec:
    """The descriptor of a real engine.

    Raises:
        SynthesisFailed: `engine` is not one of the registered engines.
    """
    if engine not in REGISTRY:
        raise _unknown(engine)
    return REGISTRY[engine]


def _unknown(engine: str) -> SynthesisFailed:
    return SynthesisFailed(f"未知的语音引擎 '{engine}'；请从 {', '.join(ENGINES)}, offline 中选一个")


def get_synthesizer(engine: str, settings: RenderSettings, cache_dir: Path | None = None) -> Synthesizer:
    """The synthesizer for `engine`, with its fallback chain: edge -> neural -> espeak
    (with `weights = "commercial-ok"`: edge -> kokoro -> espeak).

    `engine` "offline" means settings.offline_engine. Edge falls back to the offline engine when
    settings.edge.fallback_to_offline. `cache_dir` keeps the offline engines' prepared models
    (the build folder's models/; None: a cache folder outside the workspace).

    Raises:
        SynthesisFailed: `engine` is neither a registered engine nor "offline", or the settings'
            `weights` forbid it.
    """
    real = settings.resolve_engine(engine)
    if real not in REGISTRY:
        raise _unknown(engine)
    refused = settings.refused_engine(real)
    if refused is not None:
        raise SynthesisFailed(refused)
    spec = REGISTRY[real]
    synthesizer = spec.factory(settings, cache_dir)
    fallback = spec.fallback(settings)
    if fallback is None:
        return synthesizer
    return FallbackSynthesizer(synthesizer, get_synthesizer(fallback, settings, cache_dir))


def list_voices() -> list[Voice]:
    """Every voice of every engine, from the offline catalogue."""
    return list(ALL_VOICES)
