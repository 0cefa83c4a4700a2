"""Video → keyframes at scene changes. One ffmpeg process (command built with ffmpeg-python) keeps a
frame where the scene score passes video.scene_threshold (never closer than min_spacing_s to the last
kept one, and at least every max_spacing_s), scales the kept frames down and writes them as raw RGB to a
pipe; `showinfo` reports each kept frame's time on stderr. Frames are read one at a time, so a
long video is never in memory, and a decode that stalls is killed.
"""

from __future__ import annotations

import io
import queue
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from unitok.pipeline.core.config import VideoConfig

_PTS = re.compile(r"Parsed_showinfo.*\bpts_time:\s*([-\d.]+)")


class VideoError(Exception):
    """The video stream cannot be decoded, or its decode stalled."""


def frame_size(stream: dict, max_side: int) -> tuple[int, int]:
    """Output (width, height): the displayed size (rotation applied), scaled to max_side, even numbers."""
    w, h = int(stream.get("width") or 0), int(stream.get("height") or 0)
    if not (w and h):
        raise VideoError("the video stream has no frame size")
    rotation = 0
    for side in stream.get("side_data_list") or []:
        rotation = int(float(side.get("rotation", rotation) or 0))
    rotation = rotation or int(float((stream.get("tags") or {}).get("rotate", 0) or 0))
    if abs(rotation) % 180 == 90:
        w, h = h, w
    scale = min(1.0, max_side / max(w, h))
    return max(2, round(w * scale / 2) * 2), max(2, round(h * scale / 2) * 2)


def select_expr(cfg: VideoConfig) -> str:
    """ffmpeg `select` expression: the first frame, scene changes spaced by min_spacing_s, and a frame
    whenever max_spacing_s passes without one."""
    since = "t-prev_selected_t"
    terms = ["isnan(prev_selected_t)", f"gt(scene,{cfg.scene_threshold})*gte({since},{cfg.min_spacing_s})"]
    if cfg.max_spacing_s is not None:
        terms.append(f"gte({since},{cfg.max_spacing_s})")
    return f"gt({'+'.join(terms)},0)"


def keyframe_cmd(path: Path, size: tuple[int, int], cfg: VideoConfig) -> list[str]:
    import ffmpeg

    stream = (
        ffmpeg.input(str(path))
        .video.filter("select", select_expr(cfg))
        .filter("showinfo")
        # Scale (and convert to RGB) after select: only kept frames pay for it, and select scores scenes
        # on the decoder's own frames. Before select, every frame was converted: 7.6x slower on 1080p.
        .filter("scale", size[0], size[1])
        .output("pipe:", format="rawvideo", pix_fmt="rgb24", fps_mode="vfr", an=None, sn=None, dn=None)
    )
    # -progress: a status block on stderr about every half second, so a decode that is alive but has
    # no keyframe to show (a long static shot) is told apart from one that hangs.
    return stream.global_args(
        "-nostdin", "-nostats", "-progress", "pipe:2", "-loglevel", "level+info"
    ).compile()


def _read_stderr(pipe, times: queue.Queue, errors: list[str], alive: list[float]) -> None:
    for raw in iter(pipe.readline, b""):
        alive[0] = time.monotonic()
        line = raw.decode(errors="replace").rstrip()
        m = _PTS.search(line)
        if m:
            times.put(float(m.group(1)))
        elif line.startswith(("[error]", "[fatal]")) or "] [error]" in line or "] [fatal]" in line:
            errors.append(line)
    times.put(None)


def keyframes(
    path: Path, stream: dict, cfg: VideoConfig, stall_timeout_s: float
) -> Iterator[tuple[float, np.ndarray]]:
    """(seconds, HxWx3 uint8 frame) for each keyframe, in time order. Raises VideoError at the end if
    ffmpeg reported decode errors (the frames already yielded stand)."""
    import selectors

    w, h = frame_size(stream, cfg.frame_max_side)
    need = w * h * 3
    proc = subprocess.Popen(keyframe_cmd(path, (w, h), cfg), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    times: queue.Queue = queue.Queue()
    errors: list[str] = []
    alive = [time.monotonic()]  # last time ffmpeg wrote anything
    reader = threading.Thread(target=_read_stderr, args=(proc.stderr, times, errors, alive), daemon=True)
    reader.start()
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
    buf = bytearray()
    try:
        while True:
            if not sel.select(timeout=min(1.0, stall_timeout_s)):
                if time.monotonic() - alive[0] > stall_timeout_s:
                    proc.kill()
                    raise VideoError(
                        f"video decoding stalled for {stall_timeout_s:.0f} s; ffmpeg was stopped"
                    )
                continue
            data = proc.stdout.read1(need - len(buf))  # type: ignore[union-attr]
            if not data:
                break
            buf += data
            if len(buf) == need:
                try:
                    t = times.get(timeout=stall_timeout_s)
                except queue.Empty:
                    raise VideoError(
                        f"ffmpeg gave a frame but no time for it in {stall_timeout_s:.0f} s"
                    ) from None
                if t is None:  # stderr closed without a time for this frame: ffmpeg is going away
                    break
                yield max(0.0, t), np.frombuffer(bytes(buf), dtype=np.uint8).reshape(h, w, 3)
                buf.clear()
        rc = proc.wait(timeout=stall_timeout_s)
        reader.join(timeout=5)
        if rc != 0 or errors:
            raise VideoError(f"ffmpeg reported errors while decoding the video ({(errors or ['?'])[-1]})")
    finally:
        if proc.poll() is None:  # stopped early (an error, a stall, or max_frames reached)
            proc.kill()
            proc.wait(timeout=10)
        sel.close()


def to_png(frame: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(frame).save(out, format="PNG")  # 16 ms for a 1280x720 slide; level 1 saves 2 ms
    return out.getvalue()
