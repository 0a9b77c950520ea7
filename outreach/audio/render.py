"""Render approved scripts into mastered MP3 clips, behind a content-addressed cache.

A clip's cache key hashes everything that changes its sound or tags: the spoken text
(after normalisation and lexicon), engine, voice, prosody, clip layout and the
mastering profile. An unchanged library re-renders without synthesising.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import multiprocessing
import os
import re
import signal
import sys
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from outreach.audio.ffmpeg import AudioSegment
from outreach.audio.mastering import layout_clip, load_segment, master_to_mp3
from outreach.audio.recordings import demuxer, recording_seconds
from outreach.config import CONFIG_NAME, RECORDING_ENGINE, Config
from outreach.content.script_model import Script
from outreach.content.textnorm import Lexicon, load_lexicon, normalize
from outreach.errors import ConfigError, DeliveryError, OutreachError, ScriptError
from outreach.files import sha256_file, temp_dir, write_text_atomic
from outreach.tts import Synthesizer, engine_spec, get_synthesizer
from outreach.tts.voices import engine_of_voice

# Bump when clip layout or mastering code changes, so old clips are redone.
RENDER_VERSION = "5"
CHIME_S = 1.45
# The `voice` of a recording's clip (its ID3 tag and sidecar): a person, not an engine's voice.
RECORDING_VOICE = "录音"


@dataclass(frozen=True)
class ClipJob:
    """What one script's clip will be, decided before any audio is made."""

    script: Script
    spoken: str
    engine: str
    voice: str
    rate: float
    key: str
    path: Path

    @property
    def meta_path(self) -> Path:
        return self.path.with_suffix(".json")


@dataclass(frozen=True)
class ClipResult:
    """A rendered (or cached) clip and its measurements."""

    script_id: str
    path: str
    engine: str
    lufs: float
    true_peak_db: float
    duration_s: float
    cached: bool


@dataclass
class RenderReport:
    """Every clip rendered or reused, and every failure with its reason."""

    results: list[ClipResult]
    failures: list[tuple[str, str]]


def engine_for(config: Config, script: Script, override: str | None = None) -> str:
    """The real engine: the --engine override wins, then the script's own engine, then the config.

    "offline" resolves to render.offline_engine, so the cache and the tags name a real engine.
    """
    return config.render.resolve_engine(override or script.engine or config.render.engine)


def voice_for(config: Config, script: Script, engine: str) -> str:
    """The voice of `script` on `engine`: its own, else its purpose's ([render.voices]), else the engine's.

    Each applies only when `engine` offers it.

    Raises:
        ConfigError: the purpose voice is no engine's voice.
    """
    if script.voice and engine_of_voice(script.voice) == engine:
        return script.voice
    purpose = config.render.voices.voice_for(script.topic, script.priority)
    if purpose and not script.voice:
        owner = engine_of_voice(purpose)
        if owner is None:
            raise ConfigError(f"{config.workspace / CONFIG_NAME}: [render.voices] 里的音色 {purpose!r} 不存在；"
                              "请改用 `outreach voices` 列出的音色")
        if owner == engine:
            return purpose
    return config.render.default_voice(engine)


def rate_for(config: Config, script: Script) -> float:
    """Speaking rate in Hanzi per second: the script's own, else render.rate."""
    return script.rate or config.render.rate


def _clip_key(config: Config, script: Script, **sound: object) -> str:
    """The cache key: what makes the speech (`sound`), plus the tags, layout and mastering profile."""
    r = config.render
    material = {
        "version": RENDER_VERSION, "tags": [script.title, script.topic], "repeat": script.repeat, "chime": r.chime,
        "pause_s": r.pause_s, "profile": config.profile.model_dump(), **sound,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _cache_key(config: Config, script: Script, spoken: str, engine: str, voice: str, rate: float) -> str:
    spec = engine_spec(engine)  # what else changes this engine's sound: its version, its own prosody
    prosody: dict[str, object] = {"rate": rate} | spec.prosody(config.render, rate)
    return _clip_key(config, script, spoken=spoken, engine=engine, engine_version=spec.version, voice=voice,
                     prosody=prosody)


def _plan_recording(config: Config, script: Script) -> ClipJob:
    """A recording's clip: keyed by the recording's sha256; one clip whatever the village's voice or --engine."""
    key = _clip_key(config, script, engine=RECORDING_ENGINE, recording_sha256=script.recording_sha256)
    return ClipJob(script, script.text, RECORDING_ENGINE, RECORDING_VOICE, 0.0, key,
                   config.clips_dir / f"{script.id}-{key[:12]}.mp3")


def plan_clip(config: Config, script: Script, lexicon: Lexicon, engine_override: str | None = None,
              voice: str | None = None) -> ClipJob:
    """Decide the spoken text, engine, voice, rate, cache key and file name of a clip.

    `voice` (a village's or township's, e.g. an edge dialect voice) picks the engine that
    offers it and wins over the script's voice and --engine; its clip is named
    <script>@<voice>-<key>.mp3 and lives beside the default <script>-<key>.mp3.
    A recording script has one clip, its recording mastered: `voice` and `engine_override` do not apply.
    """
    if script.is_recording:
        return _plan_recording(config, script)
    spoken = normalize(script.text, lexicon)
    engine = engine_of_voice(voice) if voice else None
    if voice and engine is None:
        raise ScriptError(f"'{script.id}' 的音色 {voice!r} 不存在；请在 schedules/county.yaml 的 voice: 里"
                          "改用 `outreach voices` 列出的音色")
    engine = engine or engine_for(config, script, engine_override)
    chosen = voice or voice_for(config, script, engine)
    rate = rate_for(config, script)
    key = _cache_key(config, script, spoken, engine, chosen, rate)
    stem = f"{script.id}@{voice}" if voice else script.id
    return ClipJob(script, spoken, engine, chosen, rate, key, config.clips_dir / f"{stem}-{key[:12]}.mp3")


def cached_result(job: ClipJob) -> ClipResult | None:
    """The clip from an earlier render with the same key, if it is complete.

    A clip that edge-tts could not make (and the offline engine made instead)
    is not reused when edge is asked for: the next run tries edge again.
    """
    meta = _read_meta(job)
    if meta is None or not job.path.is_file() or job.path.stat().st_size != meta.get("size"):
        return None
    if meta["engine"] != job.engine:
        return None
    return ClipResult(job.script.id, str(job.path), meta["engine"], meta["lufs"], meta["true_peak_db"],
                      meta["duration_s"], cached=True)


def render_clip(job: ClipJob, config: Config, synthesizer: Synthesizer | None) -> ClipResult:
    """Synthesise (a recording: decode), lay out and master one clip; write the MP3 and its sidecar atomically.

    `synthesizer` is None for a recording, which no engine speaks.
    """
    script, profile = job.script, config.profile
    if job.engine == RECORDING_ENGINE:
        segment, engine, voice = _recording_segment(job, profile.sample_rate), RECORDING_ENGINE, job.voice
    else:
        assert synthesizer is not None, job.engine
        with temp_dir("tts") as tmp:
            speech = synthesizer.synthesize(job.spoken, job.voice, Path(tmp) / "speech", rate=job.rate)
            segment = load_segment(speech.path, speech.fmt, profile.sample_rate)
        engine, voice = speech.engine, speech.voice
    clip = layout_clip(segment, repeat=script.repeat, pause_s=config.render.pause_s, with_chime=config.render.chime,
                       profile=profile)
    tags = {"title": script.title, "topic": script.topic, "script_id": script.id, "engine": engine, "voice": voice}
    loud = master_to_mp3(clip, job.path, profile, tags=tags)
    # Where each repeat of the speech lies in the clip, so it can be checked (heard) region by region.
    layout = {"chime_s": round(len(clip) / 1000 - script.repeat * segment.duration_seconds
                               - (script.repeat - 1) * config.render.pause_s, 3),
              "speech_s": round(segment.duration_seconds, 3), "pause_s": config.render.pause_s, "repeat": script.repeat}
    meta = {"key": job.key, "script_id": script.id, "engine": engine, "voice": voice,
            "requested_engine": job.engine, "requested_voice": job.voice, "rate": job.rate, "spoken": job.spoken,
            "layout": layout, "size": job.path.stat().st_size, "sha256": sha256_file(job.path), **asdict(loud)}
    write_text_atomic(job.meta_path, json.dumps(meta, ensure_ascii=False, indent=1))
    _remove_stale(job)
    return ClipResult(script.id, str(job.path), engine, loud.lufs, loud.true_peak_db, loud.duration_s, cached=False)


def _recording_segment(job: ClipJob, sample_rate: int) -> AudioSegment:
    """The recording of `job`'s script, decoded, once its bytes are checked against the recorded sha256.

    Raises ScriptError when the file is missing or is not the recording the script (and its approval) names.
    """
    script = job.script
    path = script.recording_path
    if path is None or not path.is_file():
        raise ScriptError(f"{script.path}: 找不到录音文件 {script.recording}；请用 "
                          f"`outreach scripts add-recording {script.id} 文件` 重新添加录音")
    if sha256_file(path) != script.recording_sha256:
        raise ScriptError(f"{path}: 录音文件和稿件记录的校验值不一致（文件被替换过）；请用 "
                          f"`outreach scripts add-recording {script.id} 文件` 重新添加，添加后要重新审核")
    return load_segment(path, demuxer(path.suffix.lstrip(".")), sample_rate)


def render_job(job: ClipJob, config: Config, synthesizers: dict[str, Synthesizer] | None = None) -> ClipResult:
    """`render_clip` with the job's synthesizer (from `synthesizers`, a cache by engine), none for a recording."""
    if job.engine == RECORDING_ENGINE:
        return render_clip(job, config, None)
    return render_clip(job, config, _synthesizer(config, job.engine, {} if synthesizers is None else synthesizers))


def _remove_stale(job: ClipJob) -> None:
    """Delete this clip's older keys (the library keeps one clip per script and voice)."""
    stem = job.path.stem.rsplit("-", 1)[0]  # <script> or <script>@<voice>
    own = re.compile(re.escape(stem) + r"-[0-9a-f]{12}\.(mp3|json)")
    for old in job.path.parent.glob(f"{stem}-*"):
        if own.fullmatch(old.name) and old.stem != job.path.stem:
            old.unlink(missing_ok=True)


def _synthesizer(config: Config, engine: str, cache: dict[str, Synthesizer]) -> Synthesizer:
    if engine not in cache:
        cache[engine] = get_synthesizer(engine, config.render, cache_dir=config.build_path / "models")
    return cache[engine]


_WORKER_SYNTHESIZERS: dict[str, Synthesizer] = {}


def _render_in_worker(job: ClipJob, config: Config) -> ClipResult | str:
    """Pool worker: render one clip; a failure comes back as its message (errors stay picklable)."""
    try:
        return render_job(job, config, _WORKER_SYNTHESIZERS)
    except OutreachError as exc:
        return str(exc)


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent(parent_pid: int) -> None:
    """Pool initializer: the kernel kills this worker when the process that started it dies.

    Without it a `kill -9` of `outreach render` leaves idle workers (about 430 MB each) and the
    resource tracker running under PID 1 for ever. The signal follows the thread that spawned
    the worker; render_library's caller waits in that thread for the whole pool.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the worker still ends when its queue breaks
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def render_workers(pending: int) -> int:
    """Processes to render `pending` offline clips with: one per available core, at most one per clip."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, pending))


def voice_label(script_id: str, voice: str | None) -> str:
    """How a clip is named in reports: the script id, with @voice for a village's own voice."""
    return f"{script_id}@{voice}" if voice else script_id


def render_library(config: Config, scripts: list[Script], *, engine_override: str | None = None,
                   force: bool = False, progress: bool = False, workers: int | None = None,
                   voices: Iterable[str | None] = ()) -> RenderReport:
    """Render every approved script; finish the batch, then report the failures.

    Draft scripts are skipped: only approved scripts are rendered for air. Clips of the offline
    engines render in parallel, one process per core (`workers` overrides); each clip's bytes
    are the same whichever process makes it. Edge clips render here, one at a time (the service,
    not the CPU, is their limit). Each of `voices` (villages' and townships' own voices) gets
    its own clip of every script too; its failures are reported as <script>@<voice>.
    """
    synthesizers: dict[str, Synthesizer] = {}
    approved = [s for s in scripts if s.approved]
    extra = sorted({v for v in voices if v})
    todo, label_of, outcome = _plan_jobs(config, approved, extra, engine_override, force)
    pooled = [j for j in todo if j.engine != RECORDING_ENGINE and engine_spec(j.engine).offline]
    count = workers or render_workers(len(pooled))
    if count < 2 or len(pooled) < 2:
        pooled = []
    bar = tqdm(total=len(todo), desc="生成录音", unit="条", file=sys.stderr, disable=not progress)
    if pooled:
        for engine in sorted({j.engine for j in pooled}):
            # Shared state (the neural rewritten model) is made once here, not raced for by every worker.
            prepare = engine_spec(engine).prepare
            try:
                if prepare is not None:
                    prepare(config.build_path / "models")
            except OutreachError:
                pass  # each job then falls back to its engine's fallback, and says so in its sidecar
        # spawn, not fork: the caller may run threads (web server, scheduler) that fork would copy mid-lock.
        with ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_die_with_parent, initargs=(os.getpid(),)) as pool:
            futures = {pool.submit(_render_in_worker, job, config): job for job in pooled}
            for future in as_completed(futures):
                label = label_of[id(futures[future])]
                try:
                    outcome[label] = future.result()
                except BrokenProcessPool:  # a worker died (killed, out of memory); its text is English and says no more
                    outcome[label] = "生成录音的进程意外退出（被结束，或内存不够）；请重新运行 `outreach render`"
                bar.update()
    in_pool = {id(job) for job in pooled}
    for job in todo:
        if id(job) in in_pool:
            continue
        label = label_of[id(job)]
        bar.set_postfix_str(label)
        try:
            outcome[label] = render_job(job, config, synthesizers)
        except OutreachError as exc:
            outcome[label] = str(exc)
        bar.update()
    bar.close()
    return _report(approved, extra, outcome)


def _plan_jobs(config: Config, approved: list[Script], extra: list[str], engine_override: str | None, force: bool
               ) -> tuple[list[ClipJob], dict[int, str], dict[str, ClipResult | str]]:
    """The clips to render (and each one's label, by job id), and the outcome of those cached or unplannable."""
    lexicon = load_lexicon(config.lexicon_path)
    outcome: dict[str, ClipResult | str] = {}
    todo: list[ClipJob] = []
    label_of: dict[int, str] = {}
    for script in approved:
        for voice in _voices_of(script, extra):
            label = voice_label(script.id, voice)
            try:
                job = plan_clip(config, script, lexicon, engine_override, voice=voice)
                hit = None if force else cached_result(job)
                if hit is None:
                    todo.append(job)
                    label_of[id(job)] = label
                else:
                    outcome[label] = hit
            except OutreachError as exc:
                outcome[label] = str(exc)
    return todo, label_of, outcome


def _voices_of(script: Script, extra: list[str]) -> tuple[str | None, ...]:
    """The voices a script gets a clip in: the default and each village's own; a recording has only its own."""
    return (None,) if script.is_recording else (None, *extra)


def _report(approved: list[Script], extra: list[str], outcome: dict[str, ClipResult | str]) -> RenderReport:
    """Every clip's outcome in script and voice order: a result, or a failure naming the script file."""
    report = RenderReport(results=[], failures=[])
    path_of = {s.id: s.path for s in approved}
    for label in [voice_label(s.id, v) for s in approved for v in _voices_of(s, extra)]:
        got = outcome[label]
        if isinstance(got, ClipResult):
            report.results.append(got)
        else:
            report.failures.append((label, f"{path_of[label.split('@')[0]]}: {got}"))
    return report


def require_approved(scripts: list[Script], ids: list[str]) -> list[Script]:
    """The scripts named by `ids`; an unknown or draft id is an error with the fix."""
    by_id = {s.id: s for s in scripts}
    chosen = []
    for script_id in ids:
        script = by_id.get(script_id)
        if script is None:
            raise ScriptError(f"audio_scripts/ 里没有编号为 '{script_id}' 的广播稿；请检查编号")
        if not script.approved:
            raise ScriptError(f"{script.path}: 广播稿 '{script_id}' 还是草稿；请先用 "
                              f"`outreach scripts approve {script_id} --by 姓名` 批准，再生成播出用的录音")
        chosen.append(script)
    return chosen


def estimate_duration(config: Config, script: Script) -> float:
    """Seconds a clip will last, from its text length (a recording: its length), before it is rendered."""
    speech = _recording_length(script) if script.is_recording else None
    if speech is None:
        speech = len(script.text) / rate_for(config, script)
    return (CHIME_S if config.render.chime else 0.0) + script.repeat * speech + (script.repeat - 1) * config.render.pause_s


_RECORDING_LENGTH: dict[str, float] = {}  # seconds by the recording's sha256


def _recording_length(script: Script) -> float | None:
    """Seconds of a recording script's audio (decoded once per recording), None when it cannot be read."""
    sha, path = script.recording_sha256 or "", script.recording_path
    if sha not in _RECORDING_LENGTH:
        try:
            _RECORDING_LENGTH[sha] = recording_seconds(path, path.suffix.lstrip(".")) if path else 0.0
        except (OSError, OutreachError, KeyError):
            return None
    return _RECORDING_LENGTH[sha] or None


def clip_durations(config: Config, scripts: list[Script]) -> dict[str, float]:
    """Seconds per approved script clip: measured if rendered, else estimated."""
    lexicon = load_lexicon(config.lexicon_path)
    out: dict[str, float] = {}
    for script in scripts:
        if not script.approved:
            continue
        hit = cached_result(plan_clip(config, script, lexicon))
        out[script.id] = hit.duration_s if hit else estimate_duration(config, script)
    return out


def _read_meta(job: ClipJob) -> dict | None:
    """The sidecar of the clip `job` describes, if it exists and has the same key."""
    try:
        meta = json.loads(job.meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if meta.get("key") == job.key else None


def _current_meta(config: Config, script: Script, voice: str | None = None,
                  lexicon: Lexicon | None = None) -> tuple[ClipJob, dict | None]:
    lexicon = load_lexicon(config.lexicon_path) if lexicon is None else lexicon
    job = plan_clip(config, script, lexicon, voice=voice)
    return job, _read_meta(job)


def verified_clip(config: Config, script: Script, voice: str | None = None) -> Path:
    """The rendered clip of `script` (in `voice`, a village's own voice, if given), checked against its checksum.

    Raises DeliveryError if the clip was never rendered, is missing, or its
    bytes changed since rendering (a corrupt file is never aired).
    """
    return verified_clip_engine(config, script, voice)[0]


def verified_clip_engine(config: Config, script: Script, voice: str | None = None,
                         lexicon: Lexicon | None = None) -> tuple[Path, str | None]:
    """`verified_clip` and the engine that really made the clip, from one plan and one sidecar read.

    `lexicon` (load_lexicon) saves re-reading the lexicon when many clips are checked at once.
    """
    job, meta = _current_meta(config, script, voice, lexicon)
    label = voice_label(script.id, voice)
    if meta is None or not job.path.is_file():
        raise DeliveryError(f"{job.path}: '{label}' 的录音还没有生成；请运行 `outreach render`")
    if job.path.stat().st_size != meta.get("size") or sha256_file(job.path) != meta.get("sha256"):
        raise DeliveryError(f"{job.path}: '{label}' 的录音已损坏（校验值不符）；"
                            "请运行 `outreach render --force`")
    return job.path, meta.get("engine")

