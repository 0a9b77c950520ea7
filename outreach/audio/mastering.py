"""Audio steps for horn loudspeakers: chime, clip layout, mastering, MP3, measurement.

pydub lays a clip out (chime, speech, pauses); ffmpeg filters do the signal
processing, because pydub's pure-Python effects are slow and its gain clips.
Mastering is a horn band-pass and a gentle compressor, then a gain to the
EBU R128 target and a peak limiter. Loudness and true peak are measured on the
final MP3 (MP3 encoding raises inter-sample peaks) and the gain corrected.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from outreach.audio.ffmpeg import AudioSegment, Sine, configure_pydub, decode_to_pcm, run_ffmpeg
from outreach.config import MasteringProfile
from outreach.errors import AudioError
from outreach.files import atomic_path

# Headroom kept below the profile's true-peak limit before encoding: the
# limiter sees sample peaks, and MP3 encoding adds inter-sample peaks.
TP_MARGIN_DB = 1.0
# Quieter than this (ebur128 reports -70 for digital silence) is no speech.
SILENCE_LUFS = -60.0
# How close to the target the final MP3 must measure.
LOUDNESS_TOLERANCE_LU = 0.5
# The chime sits this far under the speech (integrated loudness after the horn shaping), which
# leaves the mastered clip 6 LU or more of gap after the limiter and MP3 encoding.
CHIME_BELOW_SPEECH_LU = 10.0


@dataclass(frozen=True)
class Loudness:
    """What EBU R128 says of a file."""

    lufs: float
    true_peak_db: float
    duration_s: float


def load_segment(path: Path, fmt: str, sample_rate: int) -> AudioSegment:
    """Decode `path` (container `fmt`) into a mono 16-bit pydub segment."""
    pcm = decode_to_pcm(path, fmt=fmt, sample_rate=sample_rate)
    if not pcm:
        raise AudioError(f"{path}: 解码后没有声音；语音引擎的输出是空的")
    return AudioSegment(data=pcm, sample_width=2, frame_rate=sample_rate, channels=1)


def chime(sample_rate: int) -> AudioSegment:
    """A two-tone 'ding-dong' that tells villagers an announcement follows."""
    configure_pydub()
    ding = Sine(880, sample_rate=sample_rate).to_audio_segment(duration=350, volume=-6).fade_out(200)
    dong = Sine(660, sample_rate=sample_rate).to_audio_segment(duration=500, volume=-6).fade_out(350)
    tail = AudioSegment.silent(duration=600, frame_rate=sample_rate)
    return (ding + dong + tail).set_channels(1).set_sample_width(2)


def segment_lufs(segment: AudioSegment) -> float:
    """Integrated loudness (ITU-R BS.1770, as `measure` reads it) of a pydub segment."""
    with tempfile.TemporaryDirectory(prefix="outreach-lufs-") as tmp:
        wav = Path(tmp) / "seg.wav"
        segment.export(wav, format="wav")
        return measure(wav, fmt="wav").lufs


def _lufs_through(segment: AudioSegment, profile: MasteringProfile | None) -> float:
    """Loudness of `segment` as mastering will see it: after the horn band-pass and compressor."""
    if profile is None:
        return segment_lufs(segment)
    with tempfile.TemporaryDirectory(prefix="outreach-lufs-") as tmp:
        src, shaped = Path(tmp) / "in.wav", Path(tmp) / "shaped.wav"
        segment.export(src, format="wav")
        return shape(src, shaped, profile)


def place_chime(ding: AudioSegment, speech: AudioSegment, profile: MasteringProfile | None = None) -> AudioSegment:
    """`ding` set CHIME_BELOW_SPEECH_LU under `speech`, both measured after `profile`'s shaping.

    Measured after the compressor because it squeezes loud speech more than a quiet chime; the
    gap then holds in the mastered clip (one gain for the whole clip keeps it).
    """
    speech_lufs = _lufs_through(speech, profile)
    if speech_lufs <= SILENCE_LUFS:
        return ding
    target = speech_lufs - CHIME_BELOW_SPEECH_LU
    for _ in range(3):
        error = target - _lufs_through(ding, profile)
        if abs(error) < 0.3:
            break
        ding = ding.apply_gain(error)
    return ding


def layout_clip(speech: AudioSegment, *, repeat: int, pause_s: float, with_chime: bool,
                profile: MasteringProfile | None = None) -> AudioSegment:
    """Optional chime, then the speech `repeat` times with a pause between repeats.

    The chime is set CHIME_BELOW_SPEECH_LU under the speech (as `profile` will shape both; None:
    as they are): it calls attention without startling, and stays under the words once mastered.
    """
    rate = speech.frame_rate
    pause = AudioSegment.silent(duration=int(pause_s * 1000), frame_rate=rate)
    clip = place_chime(chime(rate), speech, profile) if with_chime else AudioSegment.silent(duration=0, frame_rate=rate)
    for i in range(repeat):
        if i:
            clip += pause
        clip += speech
    return clip


def _pre_chain(profile: MasteringProfile) -> str:
    """Horn band-pass and gentle compression, before loudness normalisation."""
    steps = [f"highpass=f={profile.highpass_hz}:poles=2", f"lowpass=f={profile.lowpass_hz}:poles=2"]
    if profile.compress:
        steps.append("acompressor=threshold=0.1:ratio=3:attack=10:release=200:makeup=1")
    return ",".join(steps)


def shape(src_wav: Path, shaped_wav: Path, profile: MasteringProfile) -> float:
    """Band-pass and compress `src_wav` into `shaped_wav`; return its integrated loudness (LUFS)."""
    proc = run_ffmpeg(["-f", "wav", "-i", str(src_wav), "-af", f"{_pre_chain(profile)},ebur128",
                       "-c:a", "pcm_s16le", "-f", "wav", str(shaped_wav)], what=f"{src_wav}: 带通滤波和压缩")
    return _integrated(proc.stderr, src_wav)


def _gain_and_limit(gain_db: float, limit_db: float) -> str:
    return f"volume={gain_db:.2f}dB,alimiter=limit={10 ** (limit_db / 20):.4f}:attack=5:release=80:level=false"


def finish(shaped_wav: Path, out: Path, profile: MasteringProfile, gain_db: float, limit_db: float, *,
           fmt: str = "mp3") -> None:
    """Apply the loudness gain and the peak limiter; write `out` as MP3 (the profile's) or WAV."""
    codec = (["-c:a", "libmp3lame", "-b:a", f"{profile.bitrate_kbps}k"] if fmt == "mp3" else ["-c:a", "pcm_s16le"])
    run_ffmpeg(["-f", "wav", "-i", str(shaped_wav), "-af", _gain_and_limit(gain_db, limit_db), "-ac", "1",
                "-ar", str(profile.sample_rate), *codec, "-f", fmt, str(out)], what=f"{out}: 响度处理")


def master_to_mp3(segment: AudioSegment, out_mp3: Path, profile: MasteringProfile, *,
                  tags: dict[str, str] | None = None) -> Loudness:
    """Master `segment` for horn speakers and write `out_mp3` atomically.

    The horn band-pass and compressor run once, measuring loudness on the way;
    then a gain to the target and a peak limiter with headroom for the MP3
    encode. The encoded MP3 is measured, and the gain corrected until its
    integrated loudness is within 0.5 LU and its true peak within the limit.
    Raises AudioError if ffmpeg fails or the audio is silent, OutputError if
    the output folder cannot be written. Returns the loudness of the final MP3.
    """
    with tempfile.TemporaryDirectory(prefix="outreach-master-") as tmp_dir:
        src, shaped, candidate = (Path(tmp_dir) / name for name in ("in.wav", "shaped.wav", "out.mp3"))
        segment.export(src, format="wav")
        first = shape(src, shaped, profile)
        if first <= SILENCE_LUFS:
            raise AudioError(f"{out_mp3}: 音频没有声音；请检查语音引擎的输出")
        gain_db = profile.target_lufs - first
        limit_db = profile.true_peak_db - TP_MARGIN_DB
        for _attempt in range(5):
            finish(shaped, candidate, profile, gain_db, limit_db)
            result = measure(candidate)
            loud_ok = abs(result.lufs - profile.target_lufs) <= LOUDNESS_TOLERANCE_LU
            peak_ok = result.true_peak_db <= profile.true_peak_db
            if loud_ok and peak_ok:
                break
            # Limiting absorbs part of any extra gain, so correct by twice the shortfall.
            gain_db += 2 * (profile.target_lufs - result.lufs)
            if not peak_ok:
                limit_db -= 0.5
        else:
            raise AudioError(f"{out_mp3}: 在真峰值不超过 {profile.true_peak_db} dBTP 的前提下达不到 "
                             f"{profile.target_lufs} LUFS 响度（实测 {result.lufs} LUFS、{result.true_peak_db} dBTP）；"
                             "请调低 profile.target_lufs")
        if tags:
            write_tags(candidate, tags)
        with atomic_path(out_mp3) as tmp:
            shutil.copyfile(candidate, tmp)
    return result


_EBU_I = re.compile(r"Integrated loudness:\s+I:\s+(-?[\d.]+|-inf) LUFS")
_EBU_TP = re.compile(r"True peak:\s+Peak:\s+(-?[\d.]+|-inf) dBFS")
_DURATION = re.compile(r"time=(\d+):(\d+):([\d.]+)")


def measure(path: Path, fmt: str = "mp3") -> Loudness:
    """Integrated loudness (ITU-R BS.1770), true peak and duration of a file."""
    proc = run_ffmpeg(["-f", fmt, "-i", str(path), "-af", "ebur128=peak=true", "-f", "null", "-"],
                      what=f"{path}: 响度测量")
    i_match, tp_match = _EBU_I.search(proc.stderr), _EBU_TP.search(proc.stderr)
    times = _DURATION.findall(proc.stderr)
    if not (i_match and tp_match and times):
        raise AudioError(f"{path}: 无法测量响度；请确认它是有效的 {fmt} 文件")
    h, m, s = times[-1]
    return Loudness(
        lufs=float(i_match.group(1)),
        true_peak_db=float(tp_match.group(1)),
        duration_s=int(h) * 3600 + int(m) * 60 + float(s),
    )


def _integrated(stderr: str, what: Path) -> float:
    match = _EBU_I.search(stderr)
    if not match:
        raise AudioError(f"{what}: ffmpeg 没有输出响度测量结果")
    return float(match.group(1))


# What cheap USB players and phones show for a clip: they read ID3v2.3 title, artist and album.
CLIP_ARTIST = "公安安全宣传"
TOPIC_ALBUM = {"traffic": "交通安全宣传", "anti_fraud": "反诈宣传"}


def write_tags(path: Path, tags: dict[str, str]) -> None:
    """ID3v2.3 tags (UTF-16, which v2.3 players read): `title` goes to TIT2, every other key to a TXXX
    frame; the artist and, from `topic`, the album are set for players that show only those."""
    from mutagen.id3 import ID3, TALB, TIT2, TPE1, TXXX

    id3 = ID3()
    id3.add(TPE1(encoding=1, text=CLIP_ARTIST))
    if tags.get("topic") in TOPIC_ALBUM:
        id3.add(TALB(encoding=1, text=TOPIC_ALBUM[tags["topic"]]))
    for key, value in tags.items():
        if key == "title":
            id3.add(TIT2(encoding=1, text=value))
        else:
            id3.add(TXXX(encoding=1, desc=key, text=value))
    id3.save(path, v2_version=3)


def read_tags(path: Path) -> dict[str, str]:
    """The tags written by `write_tags`, as a plain dict."""
    from mutagen.id3 import ID3

    id3 = ID3(path)
    tags = {"title": str(id3["TIT2"].text[0])} if "TIT2" in id3 else {}
    for frame in id3.getall("TXXX"):
        tags[frame.desc] = str(frame.text[0])
    return tags
