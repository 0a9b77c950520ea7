"""A loopback fake of the Edge read-aloud WebSocket service, speaking edge-tts 7.3.1's protocol.

Protocol (from edge_tts/communicate.py 7.3.1):
- The client connects to f"{WSS_URL}&ConnectionId=..&Sec-MS-GEC=..&Sec-MS-GEC-Version=..",
  so WSS_URL must already carry a query string (?TrustedClientToken=..).
- It sends two text frames, each "Header:value\\r\\n...\\r\\n\\r\\nbody": Path:speech.config
  (JSON asking for audio-24khz-48kbitrate-mono-mp3), then Path:ssml (X-RequestId, SSML body).
- The server answers with text frames of the same shape (Path:turn.start, Path:response,
  Path:audio.metadata, Path:turn.end) and binary audio frames: a 2-byte big-endian header
  length N, N bytes of headers ending in "\\r\\n" (Path:audio, Content-Type:audio/mpeg), then MP3
  bytes. A final binary frame with Path:audio and no Content-Type and no data ends the audio.
  edge-tts stops reading at turn.end and closes the socket.

Each connection takes the next behaviour from `plan` ("ok" once the plan is used up).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import uuid
from dataclasses import dataclass, field
from html import unescape

from aiohttp import web

from outreach.audio.ffmpeg import ffmpeg_exe

BEHAVIOURS = ("ok", "no_audio", "close_early", "abort", "reject", "stall")
PATH = "/consumer/speech/synthesize/readaloud/edge/v1"


def make_tone_mp3(seconds: float = 1.0, frequency: int = 440) -> bytes:
    """A tone as a raw 24 kHz mono 48 kbit/s MP3 stream, like the service's (no ID3, no Xing frame)."""
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-f", "lavfi",
         "-i", f"sine=frequency={frequency}:duration={seconds}", "-ar", "24000", "-ac", "1",
         "-c:a", "libmp3lame", "-b:a", "48k", "-write_xing", "0", "-id3v2_version", "0", "-f", "mp3", "-"],
        capture_output=True, check=True, timeout=60,
    )
    return proc.stdout


def split_frame(frame: str) -> tuple[dict[str, str], str]:
    """Split a client text frame into its headers and body."""
    head, _, body = frame.partition("\r\n\r\n")
    headers = dict(line.split(":", 1) for line in head.split("\r\n") if line)
    return headers, body


def text_frame(request_id: str, path: str, body: dict) -> str:
    """A server text frame as the service sends it."""
    return (f"X-RequestId:{request_id}\r\nContent-Type:application/json; charset=utf-8\r\n"
            f"Path:{path}\r\n\r\n{json.dumps(body)}")


def audio_frame(request_id: str, data: bytes) -> bytes:
    """A server binary frame: 2-byte header length, headers (ending in CRLF), then MP3 bytes."""
    content_type = "Content-Type:audio/mpeg\r\n" if data else ""
    headers = f"X-RequestId:{request_id}\r\n{content_type}X-StreamId:{uuid.uuid4().hex}\r\nPath:audio\r\n"
    encoded = headers.encode()
    return len(encoded).to_bytes(2, "big") + encoded + data


@dataclass
class Request:
    """What one connection sent."""

    behaviour: str
    query: dict[str, str]
    headers: dict[str, str]
    config_headers: dict[str, str] = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    ssml_headers: dict[str, str] = field(default_factory=dict)
    ssml: str = ""

    @property
    def text(self) -> str:
        """The text inside the SSML's prosody element."""
        inner = self.ssml.split("<prosody", 1)[1].split(">", 1)[1]
        return unescape(inner.rsplit("</prosody>", 1)[0])


class FakeEdgeServer:
    """Serve `mp3` to every edge-tts request on 127.0.0.1, in a background thread."""

    def __init__(self, mp3: bytes, *, frame_bytes: int = 1024) -> None:
        self.mp3 = mp3
        self.frame_bytes = frame_bytes
        self.plan: list[str] = []
        self.requests: list[Request] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._released = asyncio.Event()

    @property
    def wss_url(self) -> str:
        """A stand-in for edge_tts.communicate.WSS_URL (already has a query string)."""
        return f"ws://127.0.0.1:{self.port}{PATH}?TrustedClientToken=FAKE"

    def start(self) -> FakeEdgeServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> FakeEdgeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get(PATH, self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        behaviour = self.plan.pop(0) if self.plan else "ok"
        assert behaviour in BEHAVIOURS, behaviour
        record = Request(behaviour, dict(request.query), dict(request.headers))
        self.requests.append(record)
        if behaviour == "reject":
            return web.Response(status=503, text="service busy")
        ws = web.WebSocketResponse(compress=True)
        await ws.prepare(request)
        record.config_headers, config = split_frame(await ws.receive_str(timeout=10))
        record.config = json.loads(config)
        record.ssml_headers, record.ssml = split_frame(await ws.receive_str(timeout=10))
        rid = record.ssml_headers.get("X-RequestId", "")
        await ws.send_str(text_frame(rid, "turn.start", {"context": {"serviceTag": "fake"}}))
        await ws.send_str(text_frame(rid, "response", {"context": {"serviceTag": "fake"},
                                                       "audio": {"type": "inline", "streamId": rid}}))
        if behaviour == "stall":
            await self._released.wait()
            return ws
        if behaviour != "no_audio":
            frames = [self.mp3[i:i + self.frame_bytes] for i in range(0, len(self.mp3), self.frame_bytes)]
            if behaviour in ("close_early", "abort"):
                await ws.send_bytes(audio_frame(rid, frames[0]))
                if behaviour == "close_early":
                    await ws.close()  # a clean close frame, before turn.end
                else:
                    assert request.transport is not None
                    request.transport.abort()  # the TCP connection just drops
                return ws
            for frame in frames:
                await ws.send_bytes(audio_frame(rid, frame))
            await ws.send_str(text_frame(rid, "audio.metadata", {"Metadata": [{
                "Type": "SentenceBoundary",
                "Data": {"Offset": 1_000_000, "Duration": 5_000_000,
                         "text": {"Text": record.text, "Length": len(record.text),
                                  "BoundaryType": "SentenceBoundary"}}}]}))
        await ws.send_bytes(audio_frame(rid, b""))
        await ws.send_str(text_frame(rid, "turn.end", {}))
        async for _ in ws:  # edge-tts closes the socket after turn.end
            pass
        return ws
