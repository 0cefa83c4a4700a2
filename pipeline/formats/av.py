"""Audio and video → audio windows (a video's keyframes: split_video). ffmpeg (through ffmpeg-python)
decodes any container to 16 kHz mono float32 on a pipe, read in one-second chunks, so a two-hour
recording is never in memory.
Windows are at most audio.max_window_s long, cut at the quietest point near the end (an energy
detector), overlap slightly, and silent windows are dropped. A decode that stalls is killed.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import numpy as np
from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.core.records import CONTENT_AUDIO, CONTENT_EMPTY, CONTENT_PIXELS, Renditions, Segment
from unitok.pipeline.formats.video import VideoError, keyframes, to_png

RATE = 16_000
FRAME = int(0.03 * RATE)  # 30 ms energy frames


class MediaError(Exception):
    """The file cannot be decoded, has no audio, or its decode stalled."""


def probe(path: Path, timeout_s: float) -> dict:
    try:
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
            capture_output=True, text=True, timeout=timeout_s,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise MediaError(f"ffprobe timed out after {timeout_s:.0f} s") from None
    if out.returncode != 0:
        raise MediaError(f"ffmpeg cannot read this file ({(out.stderr.strip().splitlines() or ['?'])[-1]})")
    return json.loads(out.stdout)


def _decode_cmd(path: Path) -> list[str]:
    import ffmpeg

    stream = ffmpeg.input(str(path)).output("pipe:", format="f32le", ac=1, ar=RATE, vn=None, sn=None, dn=None)
    return stream.global_args("-nostdin", "-loglevel", "error").compile()


def decoded_chunks(path: Path, stall_timeout_s: float) -> Iterator[np.ndarray]:
    """One-second float32 chunks from ffmpeg's stdout; kills ffmpeg if no bytes arrive for stall_timeout_s."""
    import selectors

    proc = subprocess.Popen(_decode_cmd(path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    pending = b""
    want = RATE * 4
    try:
        while True:
            if not sel.select(timeout=stall_timeout_s):
                proc.kill()
                raise MediaError(f"decoding stalled for {stall_timeout_s:.0f} s; ffmpeg was stopped")
            data = proc.stdout.read1(want)  # type: ignore[union-attr]
            if not data:
                break
            pending += data
            usable = len(pending) - len(pending) % 4
            if usable >= want:
                yield np.frombuffer(pending[:usable], dtype=np.float32)
                pending = pending[usable:]
        if len(pending) >= 4:
            yield np.frombuffer(pending[: len(pending) - len(pending) % 4], dtype=np.float32)
        err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""  # type: ignore[union-attr]
        if proc.wait(timeout=10) != 0:
            raise MediaError(f"ffmpeg failed while decoding ({(err.splitlines() or ['?'])[-1]})")
        if err:
            raise _PartialDecode(err.splitlines()[-1])
    finally:
        if proc.poll() is None:  # stopped early: a stall, or the reader gave up
            proc.kill()
            proc.wait(timeout=10)
        sel.close()


class _PartialDecode(Exception):
    """ffmpeg finished but reported errors (a truncated file): keep what decoded, warn."""


SMOOTH = 10  # frames (300 ms): a pause, not the closure of a consonant inside a word


def quietest_cut(audio: np.ndarray, search_from: int) -> tuple[int, int]:
    """(cut, quiet_from) in the window's tail from search_from: the cut is the middle of the quietest
    300 ms; quiet_from is where the quiet stretch around it begins, so an overlap never reaches back
    into the speech before a pause (that would hand the next window a clipped word)."""
    tail = audio[search_from:]
    n = len(tail) // FRAME
    if n < SMOOTH:
        return len(audio), len(audio)
    energy = (tail[: n * FRAME].reshape(n, FRAME).astype(np.float64) ** 2).mean(axis=1)
    smooth = np.convolve(energy, np.ones(SMOOTH) / SMOOTH, mode="valid")
    best = int(np.argmin(smooth))
    mid = best + SMOOTH // 2
    quiet = max(smooth[best] * 4, 1e-10)  # within 6 dB of the quietest stretch
    first = mid
    while first > 0 and energy[first - 1] <= quiet:
        first -= 1
    return search_from + mid * FRAME, search_from + first * FRAME


def windows(
    chunks: Iterator[np.ndarray], max_s: float, overlap_s: float, search_s: float
) -> Iterator[tuple[float, np.ndarray]]:
    """(start seconds, samples) windows of at most max_s, cut at pauses, overlapping by up to overlap_s
    (less where the pause before the cut is shorter). When the decoder fails, the window being built is
    still yielded before the failure is raised: audio that decoded is never dropped."""
    max_n, overlap_n, search_n = int(max_s * RATE), int(overlap_s * RATE), int(search_s * RATE)
    buf = np.zeros(0, dtype=np.float32)
    start = 0  # sample offset of buf[0]
    failure: Exception | None = None
    try:
        for chunk in chunks:
            buf = np.concatenate([buf, chunk])
            while len(buf) >= max_n:
                cut, quiet_from = quietest_cut(buf[:max_n], max_n - search_n)
                yield start / RATE, buf[:cut]
                nxt = max(cut - overlap_n, quiet_from if quiet_from < cut else cut - overlap_n, 1)
                buf, start = buf[nxt:], start + nxt
    except (MediaError, _PartialDecode) as e:
        failure = e
    if len(buf) > int(0.3 * RATE):
        yield start / RATE, buf
    if failure is not None:
        raise failure


def is_silent(audio: np.ndarray, threshold_dbfs: float) -> bool:
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) if len(audio) else 0.0
    return rms <= 10 ** (threshold_dbfs / 20)


def _video_stream(info: dict) -> dict | None:
    """The first real picture stream (not an MP3's cover art)."""
    for s in info.get("streams", []):
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic"):
            return s
    return None


class _Decoded:
    """Counts the samples that came out of the decoder, to say where a damaged stream stopped."""

    def __init__(self, chunks: Iterator[np.ndarray]):
        self.chunks, self.samples = chunks, 0

    def __iter__(self) -> Iterator[np.ndarray]:
        for chunk in self.chunks:
            self.samples += len(chunk)
            yield chunk

    @property
    def seconds(self) -> float:
        return self.samples / RATE


def _audio_windows(
    decoded: _Decoded, base: Segment, cfg: JobConfig, warnings: list[str]
) -> Iterator[Segment]:
    a = cfg.audio
    index = 0
    for start_s, samples in windows(iter(decoded), a.max_window_s, a.overlap_s, a.cut_search_s):
        if is_silent(samples, a.silence_dbfs):
            continue
        seg = base.part(index, "audio_window", CONTENT_AUDIO)
        seg.time_start_s = round(start_s, 3)
        seg.time_end_s = round(start_s + len(samples) / RATE, 3)
        seg.audio_f32 = samples.astype(np.float32).tobytes()
        seg.warnings = list(warnings)
        index += 1
        yield seg


def _keyframe_segments(
    path: Path,
    info: dict,
    stream: dict,
    base: Segment,
    cfg: JobConfig,
    first_index: int,
    warnings: list[str],
    per_segment: int,
) -> Iterator[Segment]:
    """video_frames segments of up to per_segment keyframes each (1 for OCR; a model reads several)."""
    v = cfg.video
    index, group, count = first_index, [], 0

    def emit(group: list[tuple[float, bytes]]) -> Segment:
        seg = base.part(index, "video_frames", CONTENT_PIXELS)
        seg.frame_times_s = [round(t, 3) for t, _ in group]
        seg.frames_png = [png for _, png in group]
        seg.time_start_s, seg.time_end_s = seg.frame_times_s[0], seg.frame_times_s[-1]
        seg.warnings = list(warnings)
        return seg

    # Frame times count from the container's start time (MKV/MPEG-TS often start above 0); audio
    # windows count decoded samples from 0. Subtracting it puts both on one timeline.
    origin = float((info.get("format") or {}).get("start_time") or 0.0)
    # Each segment is held back until the next is made, so a cut at max_frames can still be noted on
    # the last one.
    held: Segment | None = None
    truncated = False
    failure: VideoError | None = None
    with closing(keyframes(path, stream, v, cfg.audio.decode_timeout_s)) as frames:
        try:
            for pts, frame in frames:
                if count == v.max_frames:
                    truncated = True  # closing() stops ffmpeg
                    break
                group.append((max(0.0, pts - origin), to_png(frame)))
                count += 1
                if len(group) == per_segment:
                    if held is not None:
                        yield held
                    held, index, group = emit(group), index + 1, []
        except VideoError as e:
            # The keyframes that decoded before the damage are kept; the failure is raised after them.
            failure = e
    if group:
        if held is not None:
            yield held
        held = emit(group)
    if held is not None:
        if truncated:
            held.warnings.append(
                f"more than video.max_frames={v.max_frames} keyframes: the rest were skipped"
            )
        yield held
    if failure is not None:
        raise failure


def split_av(path: Path, base: Segment, cfg: JobConfig, needs: Renditions | None = None) -> Iterator[Segment]:
    """Audio windows first (segment indexes 0..), then a video's keyframe segments; the document puts
    them on one timeline. A damaged stream keeps what decoded and ends in an error row for the object."""
    needs = needs or Renditions()
    info = probe(path, cfg.audio.decode_timeout_s)
    has_audio = any(s.get("codec_type") == "audio" for s in info.get("streams", []))
    video = _video_stream(info) if base.modality == "video" and cfg.video.keyframes else None
    if not has_audio and video is None:
        raise MediaError(
            "no audio stream"
            + (" and no video stream to take keyframes from" if base.modality == "video" else "")
        )
    warnings = list(base.warnings)
    if not has_audio:
        warnings.append("no audio track: keyframes only")
    problems: list[str] = []
    index = 0
    if has_audio:
        decoded = _Decoded(decoded_chunks(path, cfg.audio.decode_timeout_s))
        try:
            for seg in _audio_windows(decoded, base, cfg, warnings):
                index = seg.segment_index + 1
                yield seg
        except (_PartialDecode, MediaError) as e:
            if decoded.samples == 0 and video is None:
                raise MediaError(str(e)) from None
            problems.append(
                f"audio decoding stopped at {decoded.seconds:.1f} s ({e}); the audio before it is kept"
            )
    if video is not None:
        last_frame_s: float | None = None
        try:
            for seg in _keyframe_segments(
                path, info, video, base, cfg, index, warnings, needs.frames_per_segment
            ):
                index, last_frame_s = seg.segment_index + 1, seg.time_end_s
                yield seg
        except VideoError as e:
            after = (
                f"after the keyframe at {last_frame_s:.1f} s" if last_frame_s is not None else "at the start"
            )
            problems.append(f"keyframe decoding stopped {after} ({e}); the keyframes before it are kept")
    if index == 0:
        # Nothing to transcribe: the document still exists, empty, so "converted, nothing in it" differs
        # from "never seen".
        seg = base.part(0, "audio_window", CONTENT_EMPTY)
        if has_audio:
            seg.time_start_s, seg.time_end_s = 0.0, round(decoded.seconds, 3)
            found = f"no speech found: silent (below audio.silence_dbfs {cfg.audio.silence_dbfs:g} dBFS)"
        else:
            found = "nothing to convert: no keyframes decoded"
        seg.warnings = [*warnings, found]
        yield seg
    if problems:
        # Segments already yielded stand; the damage is reported as an error row for the object.
        raise MediaError("; ".join(problems))
