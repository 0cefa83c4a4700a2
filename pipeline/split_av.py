"""Audio and video → audio windows. ffmpeg (command built with ffmpeg-python) decodes any container to
16 kHz mono float32 on a pipe, read in one-second chunks, so a two-hour recording is never in memory.
Windows are at most audio.max_window_s long, cut at the quietest point near the end (an energy
detector), overlap slightly, and silent windows are dropped. A decode that stalls is killed.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipeline.config import JobConfig
from pipeline.records import ROUTE_ASR, ROUTE_PHI4, Segment

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
        if proc.poll() is None:
            proc.kill()
        sel.close()


class _PartialDecode(Exception):
    """ffmpeg finished but reported errors (a truncated file): keep what decoded, warn."""


def quietest_cut(audio: np.ndarray, search_from: int) -> int:
    """Sample index of the quietest 30 ms frame at or after search_from (the window's tail)."""
    tail = audio[search_from:]
    n = len(tail) // FRAME
    if n == 0:
        return len(audio)
    energy = (tail[: n * FRAME].reshape(n, FRAME) ** 2).mean(axis=1)
    return search_from + int(np.argmin(energy)) * FRAME + FRAME // 2


def windows(
    chunks: Iterator[np.ndarray], max_s: float, overlap_s: float, search_s: float
) -> Iterator[tuple[float, np.ndarray]]:
    """(start seconds, samples) windows of at most max_s, cut at silences, overlapping by overlap_s."""
    max_n, overlap_n, search_n = int(max_s * RATE), int(overlap_s * RATE), int(search_s * RATE)
    buf = np.zeros(0, dtype=np.float32)
    start = 0  # sample offset of buf[0]
    for chunk in chunks:
        buf = np.concatenate([buf, chunk])
        while len(buf) >= max_n:
            cut = quietest_cut(buf[:max_n], max_n - search_n)
            yield start / RATE, buf[:cut]
            nxt = max(cut - overlap_n, 1)
            buf, start = buf[nxt:], start + nxt
    if len(buf) > int(0.3 * RATE):
        yield start / RATE, buf


def is_silent(audio: np.ndarray, threshold_dbfs: float) -> bool:
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) if len(audio) else 0.0
    return rms <= 10 ** (threshold_dbfs / 20)


def split_av(path: Path, base: Segment, cfg: JobConfig) -> Iterator[Segment]:
    info = probe(path, cfg.audio.decode_timeout_s)
    kinds = {s.get("codec_type") for s in info.get("streams", [])}
    if "audio" not in kinds:
        raise MediaError(
            "no audio stream" + (" (video only; keyframes are not converted yet)" if "video" in kinds else "")
        )
    warnings = list(base.warnings)
    if "video" in kinds and base.modality == "video":
        warnings.append("video frames are not converted yet: the audio track only")
    route = ROUTE_PHI4 if cfg.engine.uses_phi4 else ROUTE_ASR
    index = 0
    a = cfg.audio
    try:
        for start_s, samples in windows(
            decoded_chunks(path, a.decode_timeout_s), a.max_window_s, a.overlap_s, a.cut_search_s
        ):
            if is_silent(samples, a.silence_dbfs):
                continue
            seg = Segment(
                **{**base.to_row(), "segment_index": index, "segment_kind": "audio_window", "route": route}
            )
            seg.time_start_s = round(start_s, 3)
            seg.time_end_s = round(start_s + len(samples) / RATE, 3)
            seg.audio_f32 = samples.astype(np.float32).tobytes()
            seg.warnings = list(warnings)
            index += 1
            yield seg
    except _PartialDecode as e:
        # Segments already yielded stand; the truncation is reported as an error row for the object.
        raise MediaError(f"decoded partially: {e}") from None
