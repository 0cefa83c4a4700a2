"""Images (PNG, JPEG, TIFF incl. multi-page, BMP, WebP, GIF, HEIC) → one Segment per frame."""

from __future__ import annotations

import io
import posixpath
from collections.abc import Callable, Iterator
from pathlib import Path

import pillow_heif
from PIL import Image, ImageSequence, UnidentifiedImageError
from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.core.records import CONTENT_EMPTY, CONTENT_PIXELS, Renditions, Segment

pillow_heif.register_heif_opener()


class ImageOpenError(Exception):
    """The image cannot be decoded, or is larger than the configured limit."""


def _to_png(frame: Image.Image) -> bytes:
    if frame.mode not in ("RGB", "L"):
        # Alpha over white (transparent text backgrounds would OCR as black); palettes and 16-bit to 8-bit.
        rgba = frame.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        frame = background
    buf = io.BytesIO()
    frame.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


# Pictures inside pages and documents worth a description: an icon, a bullet or a rule is not, and a
# page holds few figures (more are left out, said in the page's warnings).
PICTURE_MIN_SIDE_PX = 48
MAX_PICTURES = 16
# Phi-4 reads a picture in 16 crops of 448 px by default (engine.phi4.max_crops): a larger one only costs
# memory while it waits for the engine.
PICTURE_MAX_PIXELS = 1792 * 1792


def picture_png(data: bytes | Image.Image, max_pixels: int) -> bytes | None:
    """A picture from a page or a document as PNG for a description, scaled down to PICTURE_MAX_PIXELS;
    None for one too small to show anything (an icon, a bullet, a line). Raises ImageOpenError for bytes
    no decoder reads (EMF and WMF have none here) and for a picture over max_pixels (image.max_pixels),
    which is refused before it is decoded."""
    Image.MAX_IMAGE_PIXELS = None  # bounded here, before any decoding
    try:
        img = data if isinstance(data, Image.Image) else Image.open(io.BytesIO(data))
        w, h = img.size
        if min(w, h) < PICTURE_MIN_SIDE_PX:
            return None
        if w * h > max_pixels:
            raise ImageOpenError(f"{w}x{h} = {w * h} pixels, over image.max_pixels={max_pixels}")
        if w * h > PICTURE_MAX_PIXELS:
            scale = (PICTURE_MAX_PIXELS / (w * h)) ** 0.5
            img = img.resize((max(1, int(w * scale)), max(1, int(h * scale))))
        return _to_png(img)
    except UnidentifiedImageError:
        raise ImageOpenError("no image decoder here reads it") from None  # its message holds an address
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageOpenError(f"not a decodable image ({type(e).__name__}: {e})") from None


def part_pictures(
    read: Callable[[str], bytes],
    parts: list[str | None],
    max_pixels: int,
    warnings: list[str],
    where: str = "",
) -> list[bytes | None]:
    """A package's pictures (each its image part, or None for one with no part) as PNG for their
    descriptions, in place: None where there is no part, the picture is too small, cannot be decoded
    (said in `warnings`, after `where`) or comes past the first MAX_PICTURES (said once)."""
    out: list[bytes | None] = []
    described, capped = 0, False
    for n, part in enumerate(parts, 1):
        png = None
        if part is not None and described == MAX_PICTURES:
            if not capped:
                warnings.append(f"{where}pictures past the first {MAX_PICTURES} not described")
                capped = True
        elif part is not None:
            try:
                png = picture_png(read(part), max_pixels)
            except ImageOpenError as e:
                warnings.append(f"{where}picture {n} ({posixpath.basename(part)}) not described: {e}")
        described += png is not None
        out.append(png)
    return out


def split_image(
    path: Path, base: Segment, cfg: JobConfig, needs: Renditions | None = None
) -> Iterator[Segment]:
    # Pillow's own bomb check warns at 89 MP and refuses at twice that; ours is the configured bound.
    Image.MAX_IMAGE_PIXELS = None
    try:
        img = Image.open(path)
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageOpenError(f"not a decodable image ({e})") from None
    with img:
        w, h = img.size
        if w * h > cfg.image.max_pixels:
            raise ImageOpenError(
                f"image is {w}x{h} = {w * h} pixels, over image.max_pixels={cfg.image.max_pixels}"
            )
        n_frames = getattr(img, "n_frames", 1)
        for i, frame in enumerate(ImageSequence.Iterator(img)):
            if i >= cfg.image.max_frames:
                break
            seg = base.part(i, "image", CONTENT_PIXELS)
            seg.page_number = i + 1 if n_frames > 1 else None
            seg.warnings = list(base.warnings)
            if i == cfg.image.max_frames - 1 and n_frames > cfg.image.max_frames:
                seg.warnings.append(
                    f"image.max_frames={cfg.image.max_frames}: frames {i + 2}-{n_frames} skipped"
                )
            if cfg.ocr.mode == "off":
                seg.content = CONTENT_EMPTY
                seg.warnings.append("ocr.mode off: the image's pixels were not read")
                yield seg
                continue
            try:
                seg.image_png = _to_png(frame)
            except (OSError, ValueError) as e:
                raise ImageOpenError(f"frame {i + 1} cannot be decoded ({e})") from None
            yield seg
