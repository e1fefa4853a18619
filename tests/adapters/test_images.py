from __future__ import annotations

import io

import pytest
from PIL import Image

from adapters.errors import RequestError
from adapters.images import ImageLimits, decode_image, open_image
from tests.conftest import encode

LIMITS = ImageLimits(max_pixels=1_000_000, max_side=2_000)


def status_of(data: bytes, limits: ImageLimits = LIMITS) -> int:
    with pytest.raises(RequestError) as caught:
        decode_image(data, limits)
    return caught.value.status


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_common_formats_decode(fmt):
    image = decode_image(encode(Image.new("RGB", (320, 200), (10, 200, 30)), fmt), LIMITS)
    assert image.size == (320, 200)


def test_exif_orientation_is_not_applied():
    # Immich sends previews it has oriented already; the reference does not rotate either.
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = encode(Image.new("RGB", (300, 100)), "JPEG", exif=exif)
    assert decode_image(data, LIMITS).size == (300, 100)


def test_limits_are_checked_before_decoding():
    big = encode(Image.new("L", (1500, 1000)), "PNG")
    image = open_image(big[:200], ImageLimits(max_pixels=10_000_000, max_side=5_000))  # header only
    assert image.size == (1500, 1000)
    assert status_of(big) == 413  # 1.5 MP over 1 MP


def test_side_limit():
    assert status_of(encode(Image.new("L", (2001, 10)), "PNG")) == 413


def test_empty_and_garbage_and_truncated_are_400():
    assert status_of(b"") == 400
    assert status_of(b"GIF89a but no more") == 400
    assert status_of(b"<html>not an image</html>") == 400
    jpeg = encode(Image.effect_noise((400, 300), 60).convert("RGB"), "JPEG")
    assert status_of(jpeg[: len(jpeg) // 3]) == 400


def test_formats_that_run_external_programs_are_refused():
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    assert status_of(eps) == 400
    assert Image.open(io.BytesIO(eps)).format == "EPS"  # Pillow alone would have taken it


def test_damaged_files_of_every_format_are_400_never_500():
    source = Image.effect_noise((96, 64), 80).convert("RGB")
    for fmt in ("JPEG", "PNG", "WEBP", "AVIF", "GIF", "TIFF"):
        data = encode(source, fmt)
        for offset in range(12, len(data), max(1, len(data) // 40)):
            damaged = bytearray(data)
            damaged[offset : offset + 8] = b"\xff\x00\x13\x37\xde\xad\xbe\xef"
            try:
                decode_image(bytes(damaged), LIMITS)
            except RequestError as exc:
                assert exc.status == 400, (fmt, offset)


def test_a_jpeg_can_be_decoded_reduced_no_smaller_than_asked():
    data = encode(Image.effect_noise((1440, 1080), 40).convert("RGB"), "JPEG", quality=80)
    assert decode_image(data, ImageLimits(10_000_000, 5_000), reduce_to=224).size == (360, 270)  # 1/4
    assert decode_image(data, ImageLimits(10_000_000, 5_000), reduce_to=500).size == (720, 540)  # 1/2
    assert decode_image(data, ImageLimits(10_000_000, 5_000), reduce_to=600).size == (1440, 1080)  # 540 < 600
    assert decode_image(data, ImageLimits(10_000_000, 5_000)).size == (1440, 1080)


def test_reduced_decoding_leaves_other_formats_and_small_jpegs_whole():
    png = encode(Image.new("RGB", (1440, 1080)), "PNG")
    assert decode_image(png, ImageLimits(10_000_000, 5_000), reduce_to=224).size == (1440, 1080)
    small = encode(Image.new("RGB", (400, 300)), "JPEG")
    assert decode_image(small, LIMITS, reduce_to=224).size == (400, 300)  # not twice 224 on both sides
