"""Hostile input: decompression bombs, truncated files, content that is not what its name says.

A bomb here is a file of a few hundred bytes whose header declares gigapixels (a PNG's IHDR, a JPEG's SOF,
a GIF's screen, a BMP's DIB header, a WebP's VP8L header, a TIFF's tags, an AVI's stream header and every
frame's SOF). Each must be refused from its header with a `PixelLimitError` naming the file, the declared
width × height and the limit, before a pixel is decoded (the tests that say so make Pillow's `load` fail),
in the library (the frames stage, through Dagster: only the bomb's partition fails, with the reason in
`ingest_errors`) and in uploads (`POST /search/image`: 413; not an image or truncated: 422; never 500).
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from mediagen import photo, shots_video, write_video
from PIL import Image

from media_assets.apps.server import create_app
from media_assets.definitions import build_definitions
from media_assets.defs.instance import instance_for
from media_assets.defs.media import FramesConfig
from media_assets.defs.runner import ingest
from media_assets.errors import MediaReadError
from media_assets.media import decoding
from media_assets.media.decoding import (
    DEFAULT_MAX_PIXELS,
    MAX_PIXELS_ENV,
    MAX_VIDEO_PIXELS_ENV,
    PixelLimitError,
    Sampling,
    decode_image,
    describe_content,
    load_image,
    pixel_limit,
    probe,
    sample_video,
    sniff_image_format,
    video_pixel_limit,
)
from media_assets.stages.frames import FrameSettings
from media_assets.store import catalog
from media_assets.warehouse import Warehouse

# -- the bombs -------------------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int) -> bytes:
    """A 1-bit greyscale PNG header of width × height and the compressed zeros of its first 64 rows."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * ((1 + (width + 7) // 8) * 64), 9)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", rows) + _png_chunk(b"IEND", b"")


def small_image(fmt: str, size: tuple[int, int] = (64, 48), **options) -> bytearray:
    """A real photo in `fmt`, encoded by Pillow."""
    buffer = io.BytesIO()
    rgb = cv2.cvtColor(photo("chelsea", size), cv2.COLOR_BGR2RGB)
    Image.fromarray(rgb).save(buffer, fmt, **options)
    return bytearray(buffer.getvalue())


def jpeg_bomb(width: int, height: int) -> bytes:
    """A small JPEG whose SOF0 says width × height (the scan stays 64 × 48)."""
    data = small_image("JPEG")
    struct.pack_into(">HH", data, data.index(b"\xff\xc0") + 5, height, width)
    return bytes(data)


def gif_bomb(width: int, height: int) -> bytes:
    """A small GIF whose logical screen is width × height."""
    data = small_image("GIF")
    struct.pack_into("<HH", data, 6, width, height)
    return bytes(data)


def bmp_bomb(width: int, height: int) -> bytes:
    """A small BMP whose DIB header says width × height."""
    data = small_image("BMP")
    struct.pack_into("<ii", data, 18, width, height)
    return bytes(data)


def webp_bomb(width: int, height: int) -> bytes:
    """A small lossless WebP whose VP8L header says width × height (14 bits each: at most 16384)."""
    data = small_image("WEBP", lossless=True)
    assert data[12:16] == b"VP8L" and data[20] == 0x2F
    flags = int.from_bytes(data[21:25], "little") & ~((1 << 28) - 1)  # alpha hint and version
    struct.pack_into("<I", data, 21, flags | (width - 1) | ((height - 1) << 14))
    return bytes(data)


def tiff_bomb(width: int, height: int) -> bytes:
    """A small TIFF whose ImageWidth and ImageLength tags say width × height."""
    data = small_image("TIFF")
    assert data[:2] == b"II"
    ifd = struct.unpack_from("<I", data, 4)[0]
    for n in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * n
        tag, kind = struct.unpack_from("<HH", data, entry)
        if tag in (256, 257):
            struct.pack_into("<H" if kind == 3 else "<I", data, entry + 8, width if tag == 256 else height)
    return bytes(data)


def avi_bomb(path: Path, width: int, height: int) -> Path:
    """Ten 64 × 64 Motion-JPEG frames in an AVI whose headers (the main header, the stream format and every
    frame's SOF0) declare width × height: a few KB."""
    write_video(path, [np.full((64, 64, 3), 100, np.uint8)] * 10, fps=10, fourcc="MJPG")
    data = bytearray(path.read_bytes())
    struct.pack_into("<II", data, data.index(b"avih") + 8 + 32, width, height)  # dwWidth, dwHeight
    struct.pack_into("<ii", data, data.index(b"strf") + 8 + 4, width, height)  # biWidth, biHeight
    at = data.find(b"\xff\xc0")
    while at >= 0:
        struct.pack_into(">HH", data, at + 5, height, width)
        at = data.find(b"\xff\xc0", at + 2)
    path.write_bytes(bytes(data))
    return path


BOMBS = {  # format: (suffix, make, declared width, declared height)
    "png": (".png", png_bomb, 50_000, 50_000),
    "jpeg": (".jpg", jpeg_bomb, 65_000, 65_000),
    "gif": (".gif", gif_bomb, 65_535, 65_535),
    "bmp": (".bmp", bmp_bomb, 20_000, 20_000),  # Pillow refuses BMPs over 2³¹ pixels itself
    "webp": (".webp", webp_bomb, 16_384, 16_384),
    "tiff": (".tiff", tiff_bomb, 60_000, 60_000),
}
FORMAT_OPTIONS = {"png": ("PNG", {}), "jpeg": ("JPEG", {}), "gif": ("GIF", {}), "bmp": ("BMP", {})}
FORMAT_OPTIONS |= {"webp": ("WEBP", {}), "tiff": ("TIFF", {})}


@pytest.fixture
def forbid_decoding(monkeypatch):
    """Call it, and Pillow's readers cannot decode: what passes after that was refused from its header."""

    def load(self):
        raise AssertionError(f"{type(self).__name__}.load() was called: pixels were decoded")

    def forbid() -> None:
        for reader in decoding._HEADER_READERS.values():
            monkeypatch.setattr(reader, "load", load)

    return forbid


# -- photos ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(BOMBS))
def test_a_bomb_of_every_format_is_refused_from_its_header(tmp_path, forbid_decoding, fmt):
    suffix, make, width, height = BOMBS[fmt]
    data = make(width, height)
    forbid_decoding()
    assert len(data) < 20_000 and sniff_image_format(data) == fmt
    path = tmp_path / f"bomb{suffix}"
    path.write_bytes(data)
    with pytest.raises(PixelLimitError) as caught:
        load_image(path)
    error = caught.value
    assert str(path) in str(error) and (error.width, error.height, error.limit) == (width, height, DEFAULT_MAX_PIXELS)
    assert f"declares {width} × {height} pixels" in error.reason and "178,956,970 pixels" in error.reason
    assert MAX_PIXELS_ENV in error.reason
    with pytest.raises(PixelLimitError):
        decode_image(data, "an upload")
    with pytest.raises(PixelLimitError):
        probe(path)


def test_the_limit_counts_pixels_and_comes_from_the_argument_or_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "cat.png"
    path.write_bytes(small_image("PNG", (64, 48)))
    assert load_image(path, max_pixels=64 * 48).shape == (48, 64, 3)
    with pytest.raises(PixelLimitError, match="declares 64 × 48 pixels"):
        load_image(path, max_pixels=64 * 48 - 1)
    monkeypatch.setenv(MAX_PIXELS_ENV, "3000")
    assert pixel_limit() == 3000 and pixel_limit(5000) == 5000
    with pytest.raises(PixelLimitError, match="over the limit of 3,000 pixels"):
        load_image(path)
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(ValueError, match=f"{MAX_PIXELS_ENV} must be a positive whole number"):
        load_image(path)
    monkeypatch.setenv(MAX_VIDEO_PIXELS_ENV, "0")
    with pytest.raises(ValueError, match=MAX_VIDEO_PIXELS_ENV):
        video_pixel_limit()
    monkeypatch.delenv(MAX_VIDEO_PIXELS_ENV)
    assert video_pixel_limit() == 8192 * 4320
    with pytest.raises(ValueError, match="max_pixels"):
        FrameSettings(max_pixels=0)
    settings = FramesConfig(max_pixels=5, max_video_pixels=7).settings()  # the launchpad's frames config
    assert (settings.max_pixels, settings.max_video_pixels) == (5, 7)
    assert FramesConfig().settings().max_pixels is None  # 0: the environment's limit


def test_pillows_own_bomb_limit_is_our_clear_error_too(tmp_path):
    """Raised above Pillow's own limit (2 × Image.MAX_IMAGE_PIXELS), ours passes a WebP Pillow refuses:
    that is a MediaReadError naming the file too, not a DecompressionBombError or a warning."""
    path = tmp_path / "bomb.webp"
    path.write_bytes(webp_bomb(16_384, 16_384))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(MediaReadError, match="Pillow refuses it as a decompression bomb") as caught:
            load_image(path, max_pixels=10**10)
    assert str(path) in str(caught.value) and not isinstance(caught.value, PixelLimitError)


def test_formats_are_told_by_content_not_by_name(tmp_path):
    png_named_jpg = tmp_path / "really_a_png.jpg"
    png_named_jpg.write_bytes(small_image("PNG"))
    assert load_image(png_named_jpg).shape == (48, 64, 3)
    assert probe(png_named_jpg).codec == "png"
    pdf = tmp_path / "scan.png"
    pdf.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n")
    with pytest.raises(MediaReadError, match="not an image: the content is a PDF document") as caught:
        load_image(pdf)
    assert str(pdf) in str(caught.value)
    assert describe_content(b"hello, world\n") == "text"
    assert describe_content(b"<!DOCTYPE html><html>") == "an HTML page"
    assert describe_content(b'<?xml version="1.0"?><svg xmlns=') == "an SVG drawing (vector graphics)"
    assert describe_content(b"PK\x03\x04\x14\x00") == "a ZIP archive"
    assert describe_content(b"\x00\x00\x00\x18ftypheic\x00\x00") == "a HEIC image"
    assert describe_content(b"\x00\x00\x00\x18ftypisom\x00\x00") == "an MP4/QuickTime (ISO media) file"
    assert describe_content(b"RIFF\x24\x00\x00\x00WAVEfmt ") == "a WAV audio file"
    assert describe_content(bytes(range(200, 216))).startswith("data of no known format (it starts with c8 c9")


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # Pillow's, of a TIFF cut inside its tags
@pytest.mark.parametrize("fmt", list(FORMAT_OPTIONS))
def test_truncated_images_are_clear_errors(tmp_path, fmt):
    name, options = FORMAT_OPTIONS[fmt]
    whole = bytes(small_image(name, (200, 150), **options))
    for cut in (len(whole) // 2, 40):
        path = tmp_path / f"cut{cut}.{fmt}"
        path.write_bytes(whole[:cut])
        with pytest.raises(MediaReadError, match="truncated") as caught:
            load_image(path)
        assert str(path) in str(caught.value) and not isinstance(caught.value, PixelLimitError)


# -- video -----------------------------------------------------------------------------------------


def test_a_video_declaring_huge_frames_is_refused_before_sampling(tmp_path):
    bomb = avi_bomb(tmp_path / "bomb.avi", 12_000, 12_000)
    assert bomb.stat().st_size < 20_000
    with pytest.raises(PixelLimitError) as caught:
        probe(bomb)
    assert str(bomb) in str(caught.value)
    assert "the video stream declares 12000 × 12000 pixels (144 megapixels)" in caught.value.reason
    assert "35,389,440 pixels" in caught.value.reason and MAX_VIDEO_PIXELS_ENV in caught.value.reason

    video = shots_video(tmp_path / "v.mp4", ["rocket"], seconds_each=0.5)  # 320 × 180
    assert probe(video, max_video_pixels=320 * 180).width == 320
    with pytest.raises(PixelLimitError, match="declares 320 × 180"):
        probe(video, max_video_pixels=320 * 180 - 1)
    # a stream whose frames outgrow what its container declared is stopped at the first such frame
    with pytest.raises(PixelLimitError, match="frame 0 of the video declares 320 × 180"):
        list(sample_video(video, Sampling(), decoding.DecodeStats(), max_pixels=1000))


# -- through Dagster and the API -------------------------------------------------------------------

GOOD = ["cat.png", "clip.mp4"]
BAD = {  # partition key: what its ingest_errors row says
    "bombs/gigapixel.png": "the PNG image declares 50000 × 50000 pixels (2500 megapixels), over the limit",
    "bombs/sof.jpg": "the JPEG image declares 65000 × 65000 pixels",
    "bombs/huge.avi": "the video stream declares 12000 × 12000 pixels",
    "bombs/truncated.png": "PNG image data is corrupt or truncated",
    "bombs/scan.jpg": "not an image: the content is a PDF document",
}


@pytest.fixture(scope="module")
def hostile_library(tmp_path_factory, tiny_clip):
    """A photo and a video among bombs, a truncated photo and a PDF named .jpg, ingested through Dagster."""
    warehouse = Warehouse.at(tmp_path_factory.mktemp("hostile") / "warehouse").ensure()
    media = warehouse.media_root
    cv2.imwrite(str(media / "cat.png"), photo("chelsea", (320, 240)))
    shots_video(media / "clip.mp4", ["rocket"], seconds_each=1.0)
    (media / "bombs").mkdir()
    (media / "bombs" / "gigapixel.png").write_bytes(png_bomb(50_000, 50_000))
    (media / "bombs" / "sof.jpg").write_bytes(jpeg_bomb(65_000, 65_000))
    avi_bomb(media / "bombs" / "huge.avi", 12_000, 12_000)
    (media / "bombs" / "truncated.png").write_bytes(bytes(small_image("PNG", (200, 150)))[:2000])
    (media / "bombs" / "scan.jpg").write_bytes(b"%PDF-1.7\n" + b"0" * 100)
    report = ingest(warehouse, clip_model=str(tiny_clip), device="cpu")
    return warehouse, report


def test_only_the_hostile_files_partitions_fail_each_with_its_reason(hostile_library):
    warehouse, report = hostile_library
    assert sorted(report.succeeded) == GOOD
    assert sorted(report.failed) == sorted(BAD)
    for key, reason in BAD.items():
        assert key in report.failed[key] and reason in report.failed[key], report.failed[key]
    rows = catalog.query(warehouse, "SELECT * FROM ingest_errors ORDER BY partition_key").to_pylist()
    assert [(r["partition_key"], r["stage"]) for r in rows] == [(key, "frames") for key in sorted(BAD)]
    for row in rows:
        assert BAD[row["partition_key"]] in row["message"]
        bomb = row["partition_key"] in ("bombs/gigapixel.png", "bombs/sof.jpg", "bombs/huge.avi")
        assert row["error_type"] == ("PixelLimitError" if bomb else "MediaReadError")
    kept = catalog.query(warehouse, "SELECT partition_key FROM media ORDER BY 1").to_pylist()
    assert [r["partition_key"] for r in kept] == GOOD


def test_the_frames_config_sets_the_limit_of_a_run(hostile_library, tiny_clip):
    warehouse, _ = hostile_library
    job = build_definitions(str(warehouse.root), clip_model=str(tiny_clip), device="cpu").resolve_job_def(
        "ingest_media"
    )
    instance = instance_for(warehouse)

    def run(config: dict):
        frames = {"ops": {"frames": {"config": config}}} if config else {}
        return job.execute_in_process(
            partition_key="cat.png", instance=instance, run_config=frames, raise_on_error=False
        )

    assert not run({"max_pixels": 320 * 240 - 1}).success
    error = catalog.query(warehouse, "SELECT * FROM ingest_errors WHERE partition_key = 'cat.png'").to_pylist()
    assert "declares 320 × 240 pixels" in error[0]["message"] and "76,799 pixels" in error[0]["message"]
    assert run({}).success  # back to the default: the photo is in again and its error is cleared
    assert not catalog.query(warehouse, "SELECT * FROM ingest_errors WHERE partition_key = 'cat.png'").num_rows


@pytest.fixture(scope="module")
def http(hostile_library):
    warehouse, _ = hostile_library
    with TestClient(create_app(warehouse)) as client:
        yield client


def upload(http, data: bytes, name: str = "holiday.jpg", content_type: str = "image/jpeg"):
    return http.post("/search/image", files={"file": (name, data, content_type)}, params={"k": 3})


@pytest.mark.parametrize("fmt", list(BOMBS))
def test_an_uploaded_bomb_is_refused_with_413_before_decoding(http, forbid_decoding, fmt):
    _, make, width, height = BOMBS[fmt]
    data = make(width, height)
    forbid_decoding()
    response = upload(http, data)  # named and typed as a JPEG, whatever it is
    assert response.status_code == 413, response.text
    detail = response.json()["detail"]
    assert f"declares {width} × {height} pixels" in detail and "178,956,970" in detail


@pytest.mark.parametrize(
    "data, what",
    [
        (b"%PDF-1.7\n1 0 obj\n", "a PDF document"),
        (b"<!DOCTYPE html><html><body>hi</body></html>", "an HTML page"),
        (b"just some words", "text"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "a HEIC image"),
        (bytes(range(256)), "data of no known format"),
    ],
)
def test_an_upload_that_is_no_image_is_422_naming_what_it_is(http, data, what):
    response = upload(http, data, name="photo.png", content_type="image/png")
    assert response.status_code == 422, response.text
    assert "not an image" in response.json()["detail"] and what in response.json()["detail"]


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
@pytest.mark.parametrize("fmt", list(FORMAT_OPTIONS))
def test_a_truncated_upload_is_422(http, fmt):
    name, options = FORMAT_OPTIONS[fmt]
    whole = bytes(small_image(name, (200, 150), **options))
    for cut in (len(whole) // 2, 40):
        response = upload(http, whole[:cut])
        assert response.status_code == 422, response.text
        assert "truncated" in response.json()["detail"]


def test_an_upload_is_judged_by_content_not_by_name_or_type(http, monkeypatch):
    png = cv2.imencode(".png", photo("chelsea", (320, 240)))[1].tobytes()
    response = upload(http, png, name="notes.pdf", content_type="application/pdf")
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["partition_key"] == "cat.png"
    gif = bytes(small_image("GIF", (320, 240)))  # GIF: a format OpenCV's imdecode did not read
    assert upload(http, gif, name="anim.txt", content_type="text/plain").status_code == 200
    monkeypatch.setenv(MAX_PIXELS_ENV, "10000")
    refused = upload(http, png, name="cat.png", content_type="image/png")
    assert refused.status_code == 413 and "declares 320 × 240 pixels" in refused.json()["detail"]
    assert "10,000 pixels" in refused.json()["detail"] and MAX_PIXELS_ENV in refused.json()["detail"]
