"""The station API (`/api/station/...`): manifest, content blobs with Range, as-run upload; bearer-token auth.

A station sees only its own manifest (the village comes from its token) and
uploads only its own events. Blobs are content-addressed and the same for every
station. The router's lifespan also runs the MQTT listener for presence and
alert acks when a broker is configured.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from outreach.config import TZ
from outreach.dates import json_time
from outreach.delivery.stations.accounts import authenticate
from outreach.delivery.stations.alerts import ControlListener
from outreach.delivery.stations.asrun import ingest_batch
from outreach.delivery.stations.broker import load_broker_settings
from outreach.delivery.stations.manifests import blob_path, build_manifests, read_slot_starts
from outreach.models import Station
from outreach.planning.workspace import load
from outreach.station.protocol import StationError, check_sha

log = logging.getLogger("outreach.station_api")
MAX_EVENTS = 500
MAX_EVENTS_BODY = 1024 * 1024  # bytes of one upload
MAX_DEPTH = 20  # JSON nesting of one upload
_CHUNK = 64 * 1024


def _clock() -> datetime:
    return datetime.now(TZ)


class _LoadedCache:
    """The workspace loaded once, reloaded when a schedule or script file changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._loaded: Any = None

    def get(self, config: Any) -> Any:
        files = [p for d in (config.schedules_dir, config.scripts_dir, config.clips_dir) if d.is_dir()
                 for p in d.iterdir()]
        stamp = (max((p.stat().st_mtime for p in files), default=0.0), len(files))
        with self._lock:
            if self._loaded is None or stamp != self._stamp:
                self._loaded, self._stamp = load(config), stamp
            return self._loaded


_cache = _LoadedCache()


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    listener = None
    ctx = getattr(app.state, "ctx", None)
    if ctx is not None and ctx.engine is not None:
        try:
            broker = load_broker_settings(ctx.config.workspace)
            if broker is not None:
                listener = ControlListener(ctx.engine, broker, _clock)
                listener.start()
                app.state.station_listener = listener
        except Exception:
            log.exception("村广播站的 MQTT 监听没有启动；播放盒的在线状态不会更新")
    try:
        yield
    finally:
        if listener is not None:
            listener.stop()


router = APIRouter(prefix="/api/station", lifespan=_lifespan)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers={"Cache-Control": "no-store"})


def _station(request: Request) -> Station | None:
    auth = request.headers.get("authorization", "")
    token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    return authenticate(request.app.state.ctx.engine, token)


_DENIED = "村广播站的令牌缺失、不对或已被吊销；请用 `outreach station add` 重新登记"


@router.get("/manifest")
def manifest(request: Request, days: int = 7) -> Response:
    """The calling station's manifest of its next `days` days."""
    station = _station(request)
    if station is None:
        return _error(401, _DENIED)
    ctx = request.app.state.ctx
    try:
        loaded = _cache.get(ctx.config)
        broker = load_broker_settings(ctx.config.workspace)
        built = build_manifests(loaded, [(station.id, station.village_id)], now=_clock(), days=days,
                                engine=ctx.engine, broker_url=broker.url if broker else "",
                                slot_starts=read_slot_starts(ctx.slot_starts))
    except StationError as exc:
        return _error(400, str(exc))
    return Response(built.manifests[station.id].to_json(), media_type="application/json",
                    headers={"Cache-Control": "no-store"})


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """The (first, last) byte of a `Range: bytes=...` header, per RFC 9110 14.1.2; None to send the whole file.

    `N-M` and `N-` (open) ranges, `-N` suffix ranges (the last N bytes). Only the
    first range of a list is served. ValueError when unsatisfiable (416).
    A header that is not a bytes range is ignored, as the RFC allows.
    """
    if not header or not header.strip().lower().startswith("bytes="):
        return None
    spec = header.strip()[6:].split(",")[0].strip()
    first, dash, last = spec.partition("-")
    first, last = first.strip(), last.strip()
    if not dash or (first and not first.isdigit()) or (last and not last.isdigit()) or not (first or last):
        return None  # not a valid range: ignore it and send the whole representation
    if not first:  # suffix range: the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise ValueError(header)
        return max(0, size - n), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # an invalid range-spec: ignored
    if start >= size:
        raise ValueError(header)
    return start, min(int(last) if last else size - 1, size - 1)


def _stream(path: Path, start: int, length: int) -> Iterator[bytes]:
    with path.open("rb") as f:
        f.seek(start)
        left = length
        while left > 0:
            chunk = f.read(min(_CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


@router.get("/blobs/{sha256}")
def blob(sha256: str, request: Request) -> Response:
    """One program or alert MP3 by its sha256; `Range` (`N-M`, `N-`, `-N`) resumes a download."""
    if _station(request) is None:
        return _error(401, _DENIED)
    try:
        sha = check_sha(sha256)
    except StationError as exc:
        return _error(400, str(exc))
    path = blob_path(_cache.get(request.app.state.ctx.config), sha)
    if path is None:
        return _error(404, f"没有录音文件 {sha}；请重新获取节目清单（manifest）")
    size = path.stat().st_size
    try:
        rng = _range(request.headers.get("range"), size)
    except ValueError:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{sha}"', "Cache-Control": "no-store"}
    if rng is None:
        return StreamingResponse(_stream(path, 0, size), media_type="audio/mpeg",
                                 headers=headers | {"Content-Length": str(size)})
    start, end = rng
    headers |= {"Content-Range": f"bytes {start}-{end}/{size}", "Content-Length": str(end - start + 1)}
    return StreamingResponse(_stream(path, start, end - start + 1), status_code=206, media_type="audio/mpeg",
                             headers=headers)


class BodyError(Exception):
    """A request body refused before it is parsed: (status, Chinese reason)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) by Content-Length before reading and while streaming when there is none."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.strip().isdigit():
            raise BodyError(400, "请求头里的内容长度不是数字")
        if int(length) > limit:
            raise BodyError(413, f"请求体太大（{int(length)} 字节），最多 {limit} 字节；请分批上传")
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise BodyError(413, f"请求体超过 {limit} 字节；请分批上传")
        chunks.append(chunk)
    return b"".join(chunks)


_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_depth(body: bytes) -> int:
    """How deeply arrays and objects nest in a JSON text (strings skipped), without recursion.

    At most MAX_DEPTH, it may be an upper bound (the count of brackets) rather than the exact depth.
    """
    if body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return body.count(b"[") + body.count(b"{")
    depth = deepest = 0
    for m in _TOKENS.finditer(body):
        c = m.group()
        if c in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif c in (b"]", b"}"):
            depth -= 1
    return deepest


async def read_json(request: Request, limit: int) -> Any:
    """A JSON body of at most `limit` bytes and MAX_DEPTH levels; BodyError (4xx) otherwise, never a 500."""
    body = await read_body(request, limit)
    if json_depth(body) > MAX_DEPTH:
        raise BodyError(400, f"JSON 嵌套超过 {MAX_DEPTH} 层")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise BodyError(400, f"请求体不是有效的 JSON（{exc}）") from None


@router.post("/events")
async def events(request: Request) -> Response:
    """Upload as-run events: {"events": [...]} -> {"accepted": [ids held], "results": [per event], "server_time"}.

    Each event is checked on its own against what the server sent this station;
    a refused one gets its status and reason in `results` and never blocks the others.
    """
    station = _station(request)
    if station is None:
        return _error(401, _DENIED)
    try:
        body = await read_json(request, MAX_EVENTS_BODY)
    except BodyError as exc:
        return _error(exc.status, exc.reason)
    raw = body.get("events") if isinstance(body, dict) else None
    if not isinstance(raw, list) or len(raw) > MAX_EVENTS:
        return _error(400, f"请求体须是 {{\"events\": [...]}}，最多 {MAX_EVENTS} 条事件")
    ctx = request.app.state.ctx
    try:
        loaded = await run_in_threadpool(_cache.get, ctx.config)
        starts = read_slot_starts(ctx.slot_starts)
        results = await run_in_threadpool(lambda: ingest_batch(ctx.engine, loaded, station, raw, now=_clock(),
                                                               slot_starts=starts))
    except StationError as exc:
        return _error(400, str(exc))
    for r in results:
        if r.status not in (200, 503):
            log.warning("村广播站 %s 的播出记录 %s 被拒绝（%s）：%s", station.id, r.event_id or "-", r.status, r.reason)
    return JSONResponse({"accepted": [r.event_id for r in results if r.status == 200],
                         "results": [r.to_dict() for r in results], "server_time": json_time(_clock())},
                        headers={"Cache-Control": "no-store"})


@router.get("/time")
def server_time() -> Response:
    """The server's clock, for the stations' clock-offset check (no token needed)."""
    return JSONResponse({"server_time": json_time(_clock()), "pid": os.getpid()})
