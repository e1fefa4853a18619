"""Image intake: turn uploaded bytes into a PIL image, within limits.

The limits are checked from the header, before any pixel is decoded, so a small file that
claims a huge canvas (a decompression bomb) costs nothing. The image is not EXIF-rotated:
Immich sends previews it has already oriented, and the reference service does not rotate.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from adapters.errors import RequestError

# Formats a photo library sends. Pillow can open many more, some through external programs
# (EPS runs Ghostscript); none of those belong in an upload path.
_ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "AVIF", "GIF", "BMP", "TIFF")

# What Pillow's decoders raise on damaged data: besides OSError and friends, the AVIF decoder
# raises RuntimeError, and some plugins struct.error or IndexError.
_DECODER_ERRORS = (OSError, ValueError, SyntaxError, EOFError, RuntimeError, struct.error, IndexError)

# The limits below are the one authority on image size. Pillow's own guard (a warning over
# 89 MP, an error over 179 MP) would refuse with a limit the user cannot set.
Image.MAX_IMAGE_PIXELS = None


@dataclass(frozen=True)
class ImageLimits:
    max_pixels: int
    max_side: int


def _formats() -> tuple[str, ...]:
    Image.init()
    return tuple(f for f in _ALLOWED_FORMATS if f in Image.OPEN)


def identify(data: bytes) -> Image.Image:
    """Identify the image from its header alone (no pixel decode); 400 for what is no image."""
    if not data:
        raise RequestError(400, "image is empty (0 bytes)")
    try:
        # Image.open always reads the size: never zero, Pillow refuses such headers itself.
        return Image.open(io.BytesIO(data), formats=_formats())
    except UnidentifiedImageError as exc:
        raise RequestError(
            400,
            f"image could not be identified: not a supported format ({', '.join(_formats())}) "
            f"or a corrupt or zero-sized header; {len(data)} bytes starting {data[:8]!r}",
        ) from exc
    except _DECODER_ERRORS as exc:
        raise RequestError(400, f"image header is corrupt: {type(exc).__name__}: {exc}") from exc


def check_limits(image: Image.Image, limits: ImageLimits) -> None:
    """413 for an image (identified, not decoded) over the limits."""
    width, height = image.size
    if max(width, height) > limits.max_side:
        raise RequestError(
            413, f"image is {width}x{height}; its longest side exceeds the limit of {limits.max_side} px"
        )
    if width * height > limits.max_pixels:
        raise RequestError(
            413,
            f"image is {width}x{height} = {width * height} pixels, over the limit of {limits.max_pixels}",
        )


def open_image(data: bytes, limits: ImageLimits) -> Image.Image:
    """Identify the image and check its size from the header alone (no pixel decode)."""
    image = identify(data)
    check_limits(image, limits)
    return image


def load_pixels(image: Image.Image, reduce_to: int | None = None) -> Image.Image:
    """Decode every pixel of an opened image. Raises ``RequestError`` (400), never 500.

    ``reduce_to``: a JPEG whose sides are both at least twice this is decoded at 1/2, 1/4 or
    1/8 of its size, in the DCT domain (libjpeg's own scaling), no smaller than this on either
    side: a CLIP tower reads 224 pixels, and a 1440x1080 preview then decodes as 360x270 in a
    fraction of the time. It changes pixels a little (bench/BENCHMARKS.md, "Reduced JPEG
    decoding"), so it is used only where the precision setting is not ``fp32``."""
    if reduce_to and image.format == "JPEG":
        image.draft(None, (reduce_to, reduce_to))
    try:
        image.load()
    except _DECODER_ERRORS as exc:
        raise RequestError(400, f"image data is truncated or corrupt: {type(exc).__name__}: {exc}") from exc
    return image


def decode_image(data: bytes, limits: ImageLimits, reduce_to: int | None = None) -> Image.Image:
    """Check the header, then decode every pixel (see ``load_pixels`` for ``reduce_to``).
    Raises ``RequestError`` (4xx), never 500."""
    return load_pixels(open_image(data, limits), reduce_to)
