"""The online engine: Microsoft Edge read-aloud voices through edge-tts, with retries and chunking."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import re
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import edge_tts
from edge_tts.exceptions import EdgeTTSException, NoAudioReceived

from outreach.config import RenderSettings
from outreach.errors import SynthesisFailed
from outreach.files import write_bytes_atomic
from outreach.tts.base import EngineSpec, SynthesisResult, check_voice, require_text

ENGINE = "edge"
MAX_CHUNK_CHARS = 300
# Hanzi per second the Mandarin edge voices speak at rate +0% (published figures for Xiaoxiao,
# about 250 characters a minute; not measurable here without the service).
NATIVE_RATE = 4.2

log = logging.getLogger(__name__)

# A sentence ends at one of these marks, plus any closing quotes or brackets after it.
_SENTENCE = re.compile(r"[^。！？；!?;\n]*(?:[。！？；!?;\n]+[”’」』）)\"']*|$)")
_CLAUSE = re.compile(r"[^，,、]*(?:[，,、]+|$)")

T = TypeVar("T")


class _Truncated(Exception):
    """The service closed the stream before its turn.end message."""


def _pack(pieces: list[str], max_chars: int) -> list[str]:
    """Greedily join consecutive pieces into chunks of at most `max_chars`."""
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + len(piece) > max_chars:
            chunks.append(current)
            current = ""
        current += piece
    if current:
        chunks.append(current)
    return chunks


def split_text(text: str, max_chars: int = MAX_CHUNK_CHARS) -> list[str]:
    """Split `text` into chunks of at most `max_chars`, at sentence ends where possible.

    A sentence longer than `max_chars` is split at commas (，,、), and a clause
    still too long is cut hard. Chunks with nothing speakable (only punctuation
    or spaces) are dropped, because the service answers those with no audio.

    Raises:
        ValueError: `max_chars` is not positive.
    """
    if max_chars <= 0:
        raise ValueError("max_chars 必须是正数")
    pieces: list[str] = []
    for sentence in filter(None, _SENTENCE.findall(text)):
        if len(sentence) <= max_chars:
            pieces.append(sentence)
            continue
        for clause in filter(None, _CLAUSE.findall(sentence)):
            pieces.extend(clause[i:i + max_chars] for i in range(0, len(clause), max_chars))
    chunks = (chunk.strip() for chunk in _pack(pieces, max_chars))
    return [chunk for chunk in chunks if any(ch.isalnum() for ch in chunk)]


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion from sync code, even if this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from async code (e.g. a web handler): asyncio.run would refuse, so use a worker thread.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


class EdgeSynthesizer:
    """Neural Mandarin voices from the Edge read-aloud service; writes MP3 (24 kHz mono)."""

    name = ENGINE

    def __init__(self, settings: RenderSettings, *, max_chunk_chars: int = MAX_CHUNK_CHARS) -> None:
        self.settings = settings
        self.max_chunk_chars = max_chunk_chars

    def synthesize(self, text: str, voice: str | None, out_base: Path, *, rate: float | None = None) -> SynthesisResult:
        """Speak `text` into `out_base`.mp3 at `rate` Hanzi/s; `voice` None means settings.edge_voice.

        render.edge.rate, when set, overrides the rate for this engine.

        Long text is sent as several requests whose MP3 streams are joined.

        Raises:
            UnknownVoice: `voice` is not in the edge voice catalogue.
            SynthesisFailed: the text is empty, or the service failed after all retries.
            OutputError: the MP3 file cannot be written.
        """
        voice = check_voice(ENGINE, voice or self.settings.edge_voice)
        chunks = split_text(require_text(text, ENGINE), self.max_chunk_chars)
        if not chunks:
            raise SynthesisFailed(f"{ENGINE}: 文字里没有可念的内容（只有标点）；请写上要念的话")
        audio = _run(self._synthesize_chunks(chunks, voice, self.prosody_rate(rate)))
        target = Path(out_base).with_suffix(".mp3")
        write_bytes_atomic(target, audio)
        return SynthesisResult(path=target, fmt="mp3", engine=ENGINE, voice=voice)

    def prosody_rate(self, rate: float | None) -> str:
        """edge-tts's rate string ("-10%") for `rate` Hanzi/s, unless render.edge.rate pins one."""
        if self.settings.edge.rate is not None:
            return self.settings.edge.rate
        return f"{round(((rate or self.settings.rate) / NATIVE_RATE - 1) * 100):+d}%"

    async def _synthesize_chunks(self, chunks: list[str], voice: str, rate: str) -> bytes:
        parts = []
        for index, chunk in enumerate(chunks, 1):
            parts.append(await self._with_retries(chunk, voice, rate, f"第 {index}/{len(chunks)} 段"))
        return b"".join(parts)

    async def _with_retries(self, chunk: str, voice: str, rate: str, label: str) -> bytes:
        """Synthesize one chunk, retrying network failures with exponential back-off.

        Raises:
            SynthesisFailed: every attempt failed (network, timeout, truncated or empty stream).
        """
        edge = self.settings.edge
        attempts = edge.retries  # config counts attempts in all (at least 1)
        for attempt in range(1, attempts + 1):
            communicate = self._communicate(chunk, voice, rate)
            # NoAudioReceived is retried too: the service sends it intermittently under load
            # (rany2/edge-tts#140: "a retry gets it to work"). ValueError/KeyError come from
            # a garbled metadata frame (bad JSON, missing keys).
            try:
                return await self._stream_once(communicate)
            except (aiohttp.ClientError, EdgeTTSException, TimeoutError, OSError, _Truncated,
                    ValueError, KeyError) as exc:
                reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
                if attempt == attempts:
                    hint = ("请检查音色，并确认文字里有可念的内容" if isinstance(exc, NoAudioReceived)
                            else "请检查网络，或改用离线引擎")
                    raise SynthesisFailed(
                        f"{ENGINE}: {label}用音色 '{voice}' 试了 {attempts} 次都失败（{reason}）；{hint}"
                    ) from exc
                delay = edge.backoff_s * 2 ** (attempt - 1)
                log.warning("edge-tts %s第 %d/%d 次尝试失败（%s）；%.2f 秒后重试",
                            label, attempt, attempts, reason, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def _communicate(self, chunk: str, voice: str, rate: str) -> edge_tts.Communicate:
        """A fresh edge-tts request for one chunk (each can be streamed only once).

        Raises:
            SynthesisFailed: edge-tts rejects the prosody settings.
        """
        edge = self.settings.edge
        whole_seconds = max(1, math.ceil(edge.timeout_s))  # edge-tts insists on int timeouts
        try:
            return edge_tts.Communicate(
                chunk, voice, rate=rate, volume=edge.volume, pitch=edge.pitch,
                connect_timeout=whole_seconds, receive_timeout=whole_seconds,
            )
        except (TypeError, ValueError) as exc:
            raise SynthesisFailed(f"{ENGINE}: edge-tts 不接受这些设置（{exc}）；请改正 outreach.toml 里的 render.edge") from exc

    async def _stream_once(self, communicate: edge_tts.Communicate) -> bytes:
        """Stream one request; the audio is kept in memory, never written half-done.

        Raises:
            EdgeTTSException (NoAudioReceived...), aiohttp.ClientError, TimeoutError, _Truncated.
        """
        timeout_s = self.settings.edge.timeout_s
        audio = bytearray()
        stream = communicate.stream()
        try:
            while True:
                # edge-tts's receive_timeout (aiohttp sock_read) does not reliably cover reads
                # after the WebSocket handshake, so a stalled service would hang a batch render.
                try:
                    message = await asyncio.wait_for(anext(stream), timeout_s)
                except StopAsyncIteration:
                    break
                if message["type"] == "audio":
                    audio += message["data"]
        finally:
            await stream.aclose()
        # edge-tts 7.3.1 ends quietly when the socket closes mid-stream; it only books the
        # chunk's bytes into cumulative_audio_bytes on turn.end, so a mismatch means truncation.
        if communicate.state["cumulative_audio_bytes"] != len(audio):
            raise _Truncated(f"收到 {len(audio)} 字节后连接在 turn.end 之前断开")
        return bytes(audio)


SPEC = EngineSpec(
    name=ENGINE, offline=False, factory=lambda settings, cache_dir: EdgeSynthesizer(settings),
    # The service's own prosody settings change its sound too.
    prosody=lambda settings, rate: settings.edge.model_dump(include={"rate", "volume", "pitch"}) | {"hz": rate},
    fallback=lambda settings: settings.offline_engine if settings.edge.fallback_to_offline else None,
)
