"""Images: every mode read without clipping, every page and frame written, nothing that can
identify someone carried over, size checked before decoding, memory bounded."""

from __future__ import annotations

import io
import struct
import textwrap

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps, PngImagePlugin

from veil.errors import InputError, OptionError
from veil.io.images import ImageSource, read_image, write_image
from veil.pipeline import JobOptions, Pipeline

from media import (
    LOW_MEMORY_ENV,
    astronaut_face_hidden,
    big_photo,
    mean_abs_diff,
    peak_memory_mib,
)

SECRET = "Jane Doe 48.8584N"
XMP = f"<x:xmpmeta><dc:creator>{SECRET}</dc:creator></x:xmpmeta>".encode()


@pytest.fixture(scope="module")
def pipeline():
    return Pipeline()


def exif_block() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x013B] = SECRET  # Artist
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}  # GPS IFD
    return exif


def custom_profile() -> bytes:
    """littleCMS's sRGB profile with a person's name in its description and copyright."""
    data = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = data.replace("sRGB built-in".encode("utf-16-be"), "Jane Doe cam!".encode("utf-16-be"))
    return data.replace(
        "No copyright, use freely".encode("utf-16-be"),
        "(c) Jane Doe Studio 2024".encode("utf-16-be"),
    )


def iptc_segment(text: str) -> bytes:
    """A JPEG APP13 segment holding an IPTC By-line (2:80)."""
    record = b"\x1c\x02\x50" + struct.pack(">H", len(text)) + text.encode()
    block = b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(record)) + record
    payload = b"Photoshop 3.0\x00" + block
    return b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload


def with_segment(jpeg: bytes, segment: bytes) -> bytes:
    return jpeg[:2] + segment + jpeg[2:]


def save(rgb: np.ndarray, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=fmt, **params)
    return buffer.getvalue()


def png_text() -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", SECRET)  # tEXt
    info.add_text("Comment", SECRET, zip=True)  # zTXt
    info.add_itxt("Description", SECRET, lang="en")  # iTXt
    return info


CHANNELS = {
    "jpeg exif and gps": ("jpg", lambda rgb: save(rgb, "JPEG", exif=exif_block())),
    "jpeg xmp": ("jpg", lambda rgb: save(rgb, "JPEG", xmp=XMP)),
    "jpeg iptc": ("jpg", lambda rgb: with_segment(save(rgb, "JPEG"), iptc_segment(SECRET))),
    "jpeg comment": ("jpg", lambda rgb: save(rgb, "JPEG", comment=SECRET)),
    "jpeg icc texts": ("jpg", lambda rgb: save(rgb, "JPEG", icc_profile=custom_profile())),
    "png text chunks": ("png", lambda rgb: save(rgb, "PNG", pnginfo=png_text())),
    "png exif": ("png", lambda rgb: save(rgb, "PNG", exif=exif_block())),
    "png icc texts": ("png", lambda rgb: save(rgb, "PNG", icc_profile=custom_profile())),
    "webp exif xmp icc": (
        "webp",
        lambda rgb: save(
            rgb,
            "WEBP",
            exif=exif_block(),
            xmp=XMP,
            icc_profile=custom_profile(),
        ),
    ),
    "tiff tags": (
        "tif",
        lambda rgb: save(
            rgb,
            "TIFF",
            tiffinfo={270: SECRET, 315: SECRET, 33432: SECRET, 700: SECRET.encode()},
            icc_profile=custom_profile(),
        ),
    ),
}


def carries(path, text: str = "Jane Doe") -> bool:
    """The text (plain or UTF-16) in the file's bytes or in what Pillow decodes of it."""
    with Image.open(path) as im:
        values = [*im.info.values(), *getattr(im, "text", {}).values()]
    blobs = [path.read_bytes()] + [v if isinstance(v, bytes) else str(v).encode() for v in values]
    return any(text.encode(code) in blob for blob in blobs for code in ("utf-8", "utf-16-be"))


@pytest.mark.parametrize("channel", CHANNELS)
def test_every_metadata_channel_is_dropped(tmp_path, astronaut, pipeline, channel):
    ext, make = CHANNELS[channel]
    src = tmp_path / f"in.{ext}"
    src.write_bytes(make(np.ascontiguousarray(astronaut[:, :, ::-1])))
    result = pipeline.process(src, tmp_path / f"out.{ext}")
    assert carries(src)
    assert not carries(result.output)


def test_custom_colour_profile_becomes_generic_srgb(tmp_path, astronaut, pipeline):
    src = tmp_path / "in.png"
    src.write_bytes(save(astronaut[:, :, ::-1], "PNG", icc_profile=custom_profile()))
    result = pipeline.process(src, tmp_path / "out.png")
    with Image.open(result.output) as im:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(im.info["icc_profile"]))
        pixels = np.asarray(im.convert("RGB"))[:, :, ::-1]
    assert "Jane Doe" not in ImageCms.getProfileDescription(profile)
    assert mean_abs_diff(pixels[380:], astronaut[380:]) < 2  # sRGB to sRGB: colours unchanged


def test_keep_metadata_keeps_exif_less_orientation_and_thumbnail(tmp_path, astronaut):
    src = tmp_path / "in.jpg"
    exif = exif_block()
    exif[0x0112] = 6
    src.write_bytes(save(astronaut[:, :, ::-1], "JPEG", exif=exif))
    with ImageSource(src, keep_metadata=True) as source:
        write_image(next(source.pictures()).image, tmp_path / "kept.jpg", source=source)
    with Image.open(tmp_path / "kept.jpg") as im:
        kept = im.getexif()
    assert kept[0x013B] == SECRET
    assert kept.get_ifd(0x8825)
    assert 0x0112 not in kept


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path, astronaut, orientation):
    src = tmp_path / "rot.png"
    exif = Image.Exif()
    exif[0x0112] = orientation
    src.write_bytes(save(astronaut[:300, :200, ::-1], "PNG", exif=exif))
    with Image.open(src) as im:
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))[:, :, ::-1]
    assert np.array_equal(read_image(src).image, expected)


def camera_in(mode: str, camera: np.ndarray) -> Image.Image:
    grey = camera[:, :, 0]
    return {
        "I;16": lambda: Image.fromarray(grey.astype(np.uint16) * 257),
        "I": lambda: Image.fromarray(grey.astype(np.int32) * 257),
        "F": lambda: Image.fromarray(grey.astype(np.float32) / 255),
        "L": lambda: Image.fromarray(grey),
        "CMYK": lambda: Image.fromarray(camera).convert("CMYK"),
        "P": lambda: Image.fromarray(grey).convert("P", palette=Image.Palette.ADAPTIVE),
    }[mode]()


@pytest.mark.parametrize("mode", ["I;16", "I", "F", "L", "CMYK", "P"])
def test_every_mode_reads_as_its_8_bit_picture(tmp_path, camera, mode):
    src = tmp_path / "in.tif"
    camera_in(mode, camera).save(src)
    image = read_image(src).image
    assert np.abs(image.astype(int) - camera).max() <= 1


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path, camera, pipeline):
    src = tmp_path / "deep.png"
    camera_in("I;16", camera).save(src)
    result = pipeline.process(src, tmp_path / "out.png")
    with Image.open(result.output) as im:
        out = np.asarray(im.convert("RGB"))
    assert mean_abs_diff(out[300:], camera[300:]) < 1


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_is_kept(tmp_path, astronaut, pipeline, mode):
    alpha = np.zeros(astronaut.shape[:2], np.uint8)
    alpha[:, 100:] = 255
    rgba = Image.fromarray(np.dstack([astronaut[:, :, ::-1], alpha]))
    im = rgba.convert(mode) if mode != "P" else rgba.convert("P", palette=Image.Palette.ADAPTIVE)
    if mode == "P":
        im.info["transparency"] = im.getpixel((0, 0))
    src = tmp_path / "in.png"
    im.save(src, transparency=im.info.get("transparency"))
    result = pipeline.process(src, tmp_path / "out.png")
    with Image.open(src) as a, Image.open(result.output) as b:
        expected = np.asarray(a.convert("RGBA"))[:, :, 3]
        kept = np.asarray(b.convert("RGBA"))[:, :, 3]
    assert np.array_equal(kept, expected)


def pages(astronaut: np.ndarray, n: int = 3) -> list[Image.Image]:
    """The astronaut moved 20 px right on each page (a real face on every one)."""
    return [Image.fromarray(np.roll(astronaut[:, :, ::-1], 20 * i, axis=1)) for i in range(n)]


def frames_of(path) -> tuple[list[np.ndarray], list]:
    images, durations = [], []
    with Image.open(path) as im:
        for i in range(getattr(im, "n_frames", 1)):
            im.seek(i)
            im.load()
            images.append(np.asarray(im.convert("RGB"))[:, :, ::-1])
            durations.append(im.info.get("duration"))
    return images, durations


@pytest.mark.parametrize(
    "ext, params",
    [
        ("tif", {}),
        ("webp", {"duration": [80, 120, 200], "loop": 0, "lossless": True}),
        ("png", {"duration": [80, 120, 200], "loop": 0}),
    ],
)
def test_every_page_and_frame_is_anonymized_and_written(tmp_path, astronaut, pipeline, ext, params):
    src = tmp_path / f"many.{ext}"
    first, *rest = pages(astronaut)
    first.save(src, save_all=True, append_images=rest, **params)
    before, durations_in = frames_of(src)
    result = pipeline.process(src, tmp_path / f"out.{ext}")
    after, durations_out = frames_of(result.output)
    assert len(after) == 3
    assert durations_out == durations_in
    for i, (a, b) in enumerate(zip(before, after)):
        assert astronaut_face_hidden(a, b, shift=20 * i), f"picture {i + 1}"


def test_many_pages_into_a_one_picture_format_is_refused(tmp_path, astronaut, pipeline):
    src = tmp_path / "many.tif"
    first, *rest = pages(astronaut)
    first.save(src, save_all=True, append_images=rest)
    with pytest.raises(OptionError, match="holds one picture"):
        pipeline.process(src, tmp_path / "out.jpg")
    assert [p.name for p in tmp_path.iterdir()] == ["many.tif"]


def test_size_is_checked_before_decoding(tmp_path):
    src = tmp_path / "wide.png"
    Image.new("L", (4000, 3000)).save(src)
    with pytest.raises(InputError, match="12 MP.*over the limit of 10 MP"):
        ImageSource(src, max_pixels=10_000_000)
    with pytest.raises(InputError, match="over the limit"):
        Pipeline(JobOptions(max_pixels=10_000_000)).process(src, tmp_path / "out.png")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not a readable image"),
        (b"this is not an image at all", "not a readable image"),
    ],
)
def test_bad_images(tmp_path, content, message):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_image(path)


def test_truncated_image(tmp_path, astronaut):
    good = tmp_path / "good.jpg"
    Image.fromarray(astronaut).save(good)
    bad = tmp_path / "cut.jpg"
    bad.write_bytes(good.read_bytes()[:3000])
    with pytest.raises(InputError, match="truncated|damaged"):
        read_image(bad)


# Peak resident memory, not an address-space limit: thread pools reserve stacks per core, so
# address space grows with the machine's core count while the memory a run uses does not.
DECODE_ENCODE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from veil.pipeline import Pipeline
    from veil.io.images import ImageSource, save_pictures
    from veil.io.paths import reserve
    Pipeline().detector  # the model is part of what a run holds
    with ImageSource(Path(sys.argv[1])) as source, reserve(Path(sys.argv[2])) as slot:
        save_pictures(source.pictures(), slot, source=source)
    """
)
BOUND_MIB = 1536


@pytest.mark.slow
def test_decoding_and_encoding_a_large_photo_fit_the_memory_bound(tmp_path):
    src = big_photo(tmp_path / "big.jpg")
    run, peak = peak_memory_mib(DECODE_ENCODE, src, tmp_path / "out.jpg", env=LOW_MEMORY_ENV)
    assert run.returncode == 0, run.stderr[-2000:]
    assert peak <= BOUND_MIB
    with Image.open(tmp_path / "out.jpg") as im:
        assert im.size == (9728, 9728)
