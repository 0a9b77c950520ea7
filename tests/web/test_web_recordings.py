"""Recordings uploaded in the browser, and 试听 that shows its progress and returns to the script (issue 18)."""

from __future__ import annotations

import re
import threading
import warnings
from pathlib import Path

import pytest

with warnings.catch_warnings():  # starlette 1.x warns that httpx should become httpx2
    warnings.filterwarnings("ignore", message=".*httpx2", category=UserWarning)
    from fastapi.testclient import TestClient

from web_site import CSRF, DRAFT, Site, client_as, heard_page, page_form, rows, token

from outreach.audio.ffmpeg import run_ffmpeg
from outreach.audio.mastering import measure
from outreach.audio.render import CHIME_S
from outreach.authoring import review
from outreach.config import load_config
from outreach.content.scripts import read_script
from outreach.errors import AudioError
from outreach.models import ScriptEvent
from outreach.web import review_pages
from outreach.web.app import MAX_FORM_BYTES

SID = "fraud-seven-tools"  # a draft, repeat 1


def wav(path: Path, seconds: float, **kw: int) -> bytes:
    """A real WAV made by ffmpeg: a quiet sine (-28 dB), as a phone records a voice."""
    rate, channels = kw.get("rate", 16000), kw.get("channels", 1)
    run_ffmpeg(["-f", "lavfi", "-i", f"sine=frequency=500:duration={seconds}", "-af", "volume=-28dB",
                "-ar", str(rate), "-ac", str(channels), "-c:a", "pcm_s16le", str(path)], what=str(path))
    return path.read_bytes()


def upload(client: TestClient, name: str, data: bytes) -> object:
    csrf = token(client, f"/scripts/{SID}")
    return client.post(f"/scripts/{SID}/recording", data={"csrf_token": csrf}, files={"file": (name, data, "audio/wav")})


def test_a_recording_uploaded_in_the_browser_is_heard_mastered_approved_and_voided_by_the_next(
        site: Site, editor: TestClient, tmp_path: Path) -> None:
    page = editor.get(f"/scripts/{SID}").text
    assert 'id="upload-recording"' in page and 'enctype="multipart/form-data"' in page
    big = wav(tmp_path / "通知.wav", 8.0, rate=48000, channels=2)
    assert len(big) > MAX_FORM_BYTES  # more than any other form may post
    sent = upload(editor, "村里的通知.wav", big)
    assert sent.status_code == 303 and sent.headers["location"] == f"/scripts/{SID}#preview"
    config = load_config(site.workspace)
    script, problems, _ = read_script(config.scripts_dir / f"{SID}.md")
    assert script is not None and script.is_recording, problems
    assert script.recording_path.read_bytes() == big
    [added] = [e for e in rows(site.engine, ScriptEvent, ScriptEvent.script_id == SID) if e.action == "recorded"]
    assert added.actor == "wang" and "村里的通知.wav，8 秒" in added.detail

    page = heard_page(editor, SID)
    assert "录音稿" in page and "录音文字稿" in page and "上传录音" in page
    assert "；真人录音" in page and "；recording" not in page  # no engine name in English
    heard = re.search(r'src="/audio/previews/[^/]+/([0-9a-f]{64})"', page).group(1)
    [clip] = [p for p in (config.build_path / "previews").glob(f"preview-{SID}-*.mp3")]
    loud = measure(clip)  # the preview is the recording through the horn mastering
    assert loud.lufs == pytest.approx(config.profile.target_lufs, abs=0.5)
    assert loud.duration_s == pytest.approx(CHIME_S + 8.0, abs=0.2)

    reviewer = client_as(site, "li", "reviewer")
    page = heard_page(reviewer, SID)
    csrf = CSRF.search(page).group(1)
    version = re.search(r'name="version" value="([0-9a-f]{16})"', page).group(1)
    assert version == script.content_hash
    ok = reviewer.post(f"/scripts/{SID}/approve", data={"csrf_token": csrf, "heard": heard, "version": version})
    assert ok.status_code == 303
    sealed, _, _ = read_script(config.scripts_dir / f"{SID}.md")
    assert sealed is not None and sealed.approved and sealed.approval_hash == script.content_hash

    # Another recording voids that approval: the seal covers the recording's sha256.
    assert upload(editor, "重录.wav", wav(tmp_path / "again.wav", 2.0)).status_code == 303
    again, _, _ = read_script(config.scripts_dir / f"{SID}.md")
    assert again is not None and not again.approved and again.edited_after_approval
    assert not script.recording_path.exists()
    assert "原来的签发已作废" in editor.get(f"/scripts/{SID}").text  # the first page after the upload says so
    heard_page(editor, SID)

    # A file that is no recording is refused on the page, in Chinese, and nothing changes.
    bad = upload(editor, "通知.wav", "这不是录音".encode())
    assert bad.status_code == 400 and "录音没有上传：" in bad.text and "无法解码" in bad.text
    none = upload(editor, "", b"")
    assert none.status_code == 400 and "没有选择录音文件" in none.text
    assert read_script(config.scripts_dir / f"{SID}.md")[0] == again

    # Its text is edited in the editor like any script's: the recording stays.
    form = page_form(editor, f"/scripts/{SID}/edit")
    assert '<option value="recording" selected>' in editor.get(f"/scripts/{SID}/edit").text
    form |= {"engine": "recording", "text": form["text"].replace("好帮手", "好帮手啊")}
    assert editor.post("/scripts/save", data={**form, "action": "save"}).status_code == 303
    edited, problems, _ = read_script(config.scripts_dir / f"{SID}.md")
    assert edited is not None and edited.recording == again.recording and "好帮手啊" in edited.text, problems
    assert '<option value="recording"' not in editor.get("/scripts/new").text  # a new script is spoken by TTS


def test_preview_returns_to_the_script_page_and_shows_its_progress(site: Site, editor: TestClient,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    real = review.render_preview

    def slow(config, script):  # type: ignore[no-untyped-def]
        assert gate.wait(30)  # as the neural voice takes about 11 s
        return real(config, script)

    monkeypatch.setattr(review, "render_preview", slow)
    monkeypatch.setattr(review_pages, "PREVIEW_WAIT_S", 0.05)
    csrf = token(editor, "/scripts/new")
    try:
        listen = editor.post("/scripts/save", data={**DRAFT, "action": "preview", "csrf_token": csrf},
                             follow_redirects=True)
        assert [r.status_code for r in listen.history] == [303] and listen.url.path == "/scripts/traffic-test-draft"
        assert listen.status_code == 200 and 'id="preview-progress"' in listen.text and "正在生成试听录音…" in listen.text
        assert '<meta http-equiv="refresh" content="2;url=/scripts/traffic-test-draft?wait=1#preview">' in listen.text
        # each reload asks for the next URL: refreshing to the URL shown, #preview and all, reloads nothing
        again = editor.get("/scripts/traffic-test-draft?wait=1").text
        assert 'content="2;url=/scripts/traffic-test-draft?wait=2#preview"' in again
        assert "<progress>" in listen.text and 'name="heard"' not in listen.text  # nothing to approve yet
    finally:
        gate.set()
    page = heard_page(editor, "traffic-test-draft")
    assert 'id="preview-audio"' in page and 'http-equiv="refresh"' not in page


def test_a_failed_preview_says_why_on_the_script_page(editor: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(config, script):  # type: ignore[no-untyped-def]
        raise AudioError("测试：语音引擎坏了")

    monkeypatch.setattr(review, "render_preview", broken)
    csrf = token(editor, f"/scripts/{SID}")
    listen = editor.post(f"/scripts/{SID}/preview", data={"csrf_token": csrf}, follow_redirects=True)
    assert listen.url.path == f"/scripts/{SID}"
    assert 'id="preview-error"' in listen.text and "试听录音没有生成：测试：语音引擎坏了" in listen.text
    assert 'http-equiv="refresh"' not in listen.text
