"""The edge engine against a loopback fake of the service: chunking, retries, failures, fallback."""

from __future__ import annotations

import array
import asyncio
import concurrent.futures
import logging
import math
import socket
from collections.abc import Iterator
from pathlib import Path

import edge_tts.communicate
import pytest
from fake_edge_server import FakeEdgeServer, make_tone_mp3

from outreach.audio.ffmpeg import decode_to_pcm
from outreach.config import EdgeSettings, RenderSettings
from outreach.errors import SynthesisFailed, UnknownVoice
from outreach.tts import EdgeSynthesizer, FallbackSynthesizer, SynthesisResult, get_synthesizer
from outreach.tts.edge import split_text

TEXT = "村民朋友们，请注意防范电信诈骗。"
TONE_S = 1.0
RATE = 24000


@pytest.fixture(scope="module")
def tone_mp3() -> bytes:
    return make_tone_mp3(TONE_S)


@pytest.fixture
def server(tone_mp3: bytes, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeEdgeServer]:
    # edge-tts opens its session with trust_env=True: a proxy variable would divert loopback.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "WS_PROXY", "WSS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    with FakeEdgeServer(tone_mp3) as fake:
        # communicate.py did `from .constants import WSS_URL`, so patch its own name.
        monkeypatch.setattr(edge_tts.communicate, "WSS_URL", fake.wss_url)
        yield fake


def settings(**edge: object) -> RenderSettings:
    return RenderSettings(edge=EdgeSettings(**{"backoff_s": 0.001, "timeout_s": 5.0, **edge}))


def decode_seconds_and_rms(result: SynthesisResult) -> tuple[float, float]:
    samples = array.array("h")
    samples.frombytes(decode_to_pcm(result.path, fmt=result.fmt, sample_rate=RATE))
    return len(samples) / RATE, math.sqrt(sum(s * s for s in samples) / max(1, len(samples)))


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_success_writes_decodable_mp3(server: FakeEdgeServer, tmp_path: Path) -> None:
    result = EdgeSynthesizer(settings(rate="-10%")).synthesize(TEXT, None, tmp_path / "clip")

    assert result == SynthesisResult(tmp_path / "clip.mp3", "mp3", "edge", "zh-CN-XiaoxiaoNeural")
    seconds, level = decode_seconds_and_rms(result)
    assert seconds == pytest.approx(TONE_S, abs=0.15)
    assert level > 1000
    (request,) = server.requests
    assert request.text == TEXT
    assert "Microsoft Server Speech Text to Speech Voice (zh-CN, XiaoxiaoNeural)" in request.ssml
    assert "rate='-10%'" in request.ssml
    assert {"TrustedClientToken", "ConnectionId", "Sec-MS-GEC", "Sec-MS-GEC-Version"} <= set(request.query)
    assert request.config["context"]["synthesis"]["audio"]["outputFormat"] == "audio-24khz-48kbitrate-mono-mp3"


def test_long_text_is_split_into_several_requests(server: FakeEdgeServer, tmp_path: Path) -> None:
    sentence = "请大家提高警惕，保护好自己的钱袋子，遇到问题及时报警。"  # 27 characters
    text = sentence * 30  # 810 characters, no spaces: edge-tts alone would send one request
    result = EdgeSynthesizer(settings(), max_chunk_chars=300).synthesize(text, "zh-CN-YunyangNeural", tmp_path / "c")

    sent = [r.text for r in server.requests]
    assert len(sent) == 3
    assert all(len(chunk) <= 300 and chunk.endswith("。") for chunk in sent)
    assert "".join(sent) == text
    seconds, _ = decode_seconds_and_rms(result)
    assert seconds == pytest.approx(3 * TONE_S, abs=0.3)  # the three MP3 streams were joined


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("你好。再见！", 300, ["你好。再见！"]),
        ("第一句。第二句？第三句！", 5, ["第一句。", "第二句？", "第三句！"]),
        ("“快跑。”他说；好", 5, ["“快跑。”", "他说；好"]),
        ("甲乙丙丁，戊己庚辛，壬癸。", 6, ["甲乙丙丁，", "戊己庚辛，", "壬癸。"]),
        ("一二三四五六七", 3, ["一二三", "四五六", "七"]),
        ("好的。……！！", 300, ["好的。……！！"]),
        ("。。。", 300, []),
    ],
    ids=["short", "sentences", "closing-quote", "commas", "hard-cut", "trailing-marks", "only-marks"],
)
def test_split_text(text: str, limit: int, expected: list[str]) -> None:
    assert split_text(text, limit) == expected


def test_no_audio_fails_and_leaves_no_file(server: FakeEdgeServer, tmp_path: Path) -> None:
    server.plan = ["no_audio"] * 3
    with pytest.raises(SynthesisFailed, match="No audio was received"):
        EdgeSynthesizer(settings(retries=3)).synthesize(TEXT, None, tmp_path / "clip")
    assert len(server.requests) == 3
    assert files_in(tmp_path) == []


def test_connection_refused_retries_then_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:  # a port that nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(edge_tts.communicate, "WSS_URL", f"ws://127.0.0.1:{port}/edge/v1?TrustedClientToken=X")
    with caplog.at_level(logging.WARNING, logger="outreach.tts.edge"), pytest.raises(
        SynthesisFailed, match="试了 3 次都失败.*请检查网络，或改用离线引擎"
    ) as info:
        EdgeSynthesizer(settings(retries=3)).synthesize(TEXT, None, tmp_path / "clip")
    assert isinstance(info.value.__cause__, OSError)  # aiohttp.ClientConnectorError
    assert len([r for r in caplog.records if "秒后重试" in r.getMessage()]) == 2
    assert files_in(tmp_path) == []


def test_handshake_rejected_then_recovers(server: FakeEdgeServer, tmp_path: Path) -> None:
    server.plan = ["reject", "reject"]
    result = EdgeSynthesizer(settings(retries=3)).synthesize(TEXT, None, tmp_path / "clip")
    assert [r.behaviour for r in server.requests] == ["reject", "reject", "ok"]
    assert result.path.read_bytes() == server.mp3


@pytest.mark.parametrize("cut", ["close_early", "abort"], ids=["close-frame", "tcp-drop"])
def test_cut_mid_stream_is_retried(server: FakeEdgeServer, tmp_path: Path, cut: str) -> None:
    server.plan = [cut]
    result = EdgeSynthesizer(settings(retries=2)).synthesize(TEXT, None, tmp_path / "clip")
    assert len(server.requests) == 2
    assert result.path.read_bytes() == server.mp3  # the whole stream, not the cut first attempt


def test_cut_mid_stream_every_time_fails_cleanly(server: FakeEdgeServer, tmp_path: Path) -> None:
    server.plan = ["close_early"] * 2
    with pytest.raises(SynthesisFailed, match="turn.end 之前断开"):
        EdgeSynthesizer(settings(retries=2)).synthesize(TEXT, None, tmp_path / "clip")
    assert files_in(tmp_path) == []


def test_stalled_stream_times_out(server: FakeEdgeServer, tmp_path: Path) -> None:
    server.plan = ["stall"]
    synth = EdgeSynthesizer(settings(retries=1, timeout_s=0.3))
    # A worker thread, so that a missing timeout fails this test instead of hanging the run.
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(synth.synthesize, TEXT, None, tmp_path / "clip")
    pool.shutdown(wait=False)
    with pytest.raises(SynthesisFailed, match="TimeoutError"):
        future.result(timeout=30)
    assert files_in(tmp_path) == []


def test_unknown_voice_makes_no_request(server: FakeEdgeServer, tmp_path: Path) -> None:
    with pytest.raises(UnknownVoice) as info:
        get_synthesizer("edge", settings()).synthesize(TEXT, "cmn", tmp_path / "clip")
    message = str(info.value)
    assert "'cmn'" in message and "edge" in message and "zh-CN-XiaoxiaoNeural" in message
    assert server.requests == []


def test_empty_text_fails_without_request(server: FakeEdgeServer, tmp_path: Path) -> None:
    for text in ("", "  ", "。！"):
        with pytest.raises(SynthesisFailed):
            EdgeSynthesizer(settings()).synthesize(text, None, tmp_path / "clip")
    assert server.requests == []


def test_fallback_to_offline_records_engine(
    server: FakeEdgeServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server.plan = ["no_audio"] * 2
    synth = get_synthesizer("edge", settings(retries=2), tmp_path / "models")
    assert isinstance(synth, FallbackSynthesizer) and synth.name == "edge"
    with caplog.at_level(logging.WARNING, logger="outreach.tts.base"):
        result = synth.synthesize(TEXT, "zh-CN-YunxiNeural", tmp_path / "clip")
    # The offline engine speaks with its own default voice: the neural one.
    assert (result.engine, result.fmt, result.voice, result.path) == ("neural", "wav", "baker", tmp_path / "clip.wav")
    seconds, level = decode_seconds_and_rms(result)
    assert seconds > 1 and level > 500
    assert any("改用备用的 neural 引擎" in r.getMessage() for r in caplog.records)
    assert "clip.wav" in files_in(tmp_path) and not [n for n in files_in(tmp_path) if n.startswith("clip.")][1:]


def test_edge_rate_follows_render_rate_unless_pinned() -> None:
    assert EdgeSynthesizer(RenderSettings(rate=4.2)).prosody_rate(None) == "+0%"
    assert EdgeSynthesizer(RenderSettings(rate=3.8)).prosody_rate(None) == "-10%"
    assert EdgeSynthesizer(RenderSettings()).prosody_rate(5.04) == "+20%"
    assert EdgeSynthesizer(settings(rate="+5%")).prosody_rate(3.0) == "+5%"


def test_no_fallback_when_disabled(server: FakeEdgeServer, tmp_path: Path) -> None:
    server.plan = ["no_audio"]
    synth = get_synthesizer("edge", settings(retries=1, fallback_to_offline=False))
    assert isinstance(synth, EdgeSynthesizer)
    with pytest.raises(SynthesisFailed):
        synth.synthesize(TEXT, None, tmp_path / "clip")
    assert files_in(tmp_path) == []


def test_callable_from_a_running_event_loop(server: FakeEdgeServer, tmp_path: Path) -> None:
    async def web_handler() -> SynthesisResult:  # e.g. an async web route calling the sync API
        return EdgeSynthesizer(settings()).synthesize(TEXT, None, tmp_path / "clip")

    assert asyncio.run(web_handler()).path.read_bytes() == server.mp3
