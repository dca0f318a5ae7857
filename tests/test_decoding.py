"""Probing and sampling: timestamps, every-N, variable frame rate, EXIF, bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from mediagen import photo, shots_video, write_vfr_video, write_video
from PIL import Image

from media_assets.errors import MediaReadError
from media_assets.media.decoding import DecodeStats, Sampling, load_image, probe, sample_video


def sampled(path, sampling, expected=None):
    stats = DecodeStats()
    frames = list(sample_video(path, sampling, stats, expected))
    return frames, stats


def test_one_frame_per_second_has_the_right_timestamps(tmp_path):
    video = shots_video(tmp_path / "cuts.mp4", ["astronaut", "chelsea", "coffee"], seconds_each=2.0, fps=30)
    frames, stats = sampled(video, Sampling(fps=1.0))
    assert [f.index for f in frames] == [0, 30, 60, 90, 120, 150]
    assert [round(f.timestamp_s, 3) for f in frames] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert stats.frames_decoded == 180 and stats.undecodable == 0
    assert frames[0].image.shape == (180, 320, 3)


def test_sampling_rate_above_one_and_every_n_frames(tmp_path):
    video = shots_video(tmp_path / "v.mp4", ["astronaut"], seconds_each=2.0, fps=25)
    frames, _ = sampled(video, Sampling(fps=5.0))
    assert [round(f.timestamp_s, 2) for f in frames] == [round(i * 0.2, 2) for i in range(10)]
    frames, _ = sampled(video, Sampling(every_n_frames=7))
    assert [f.index for f in frames] == list(range(0, 50, 7))
    assert [round(f.timestamp_s, 3) for f in frames] == [round(i / 25, 3) for i in range(0, 50, 7)]


def test_variable_frame_rate_uses_presentation_times(tmp_path):
    times = [0.0, 0.1, 0.2, 0.9, 1.0, 1.05, 2.5, 2.6, 3.7, 4.0]
    video = write_vfr_video(tmp_path / "vfr.mp4", times)
    frames, stats = sampled(video, Sampling(fps=1.0))
    # kept: the first frame at or after each whole second (index/fps arithmetic would pick others)
    assert [round(f.timestamp_s, 3) for f in frames] == [0.0, 1.0, 2.5, 3.7, 4.0]
    assert [f.index for f in frames] == [0, 4, 6, 8, 9]
    assert stats.frames_decoded == len(times)


def test_undecodable_frames_inside_a_video_are_skipped_and_counted(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (120, 160, 3), dtype=np.uint8) for _ in range(60)]
    video = write_video(tmp_path / "mj.avi", images, fps=10, fourcc="MJPG")
    data = bytearray(video.read_bytes())
    jpeg_starts = [i for i in range(len(data) - 2) if data[i] == 0xFF and data[i + 1] == 0xD8 and data[i + 2] == 0xFF]
    assert len(jpeg_starts) == 60
    for k in (20, 21, 40):  # wipe the headers of three frames
        data[jpeg_starts[k] : jpeg_starts[k] + 2000] = bytes(
            np.random.default_rng(k).integers(0, 255, 2000, dtype=np.uint8)
        )
    video.write_bytes(bytes(data))
    info = probe(video)
    frames, stats = sampled(video, Sampling(every_n_frames=1), info.frame_count)
    assert stats.undecodable == 3
    assert len(frames) == 57


def test_probe_reports_container_facts(tmp_path):
    video = shots_video(tmp_path / "v.mp4", ["astronaut"], seconds_each=1.0, fps=24)
    info = probe(video)
    assert (info.kind, info.container, info.width, info.height) == ("video", "mp4", 320, 180)
    assert info.fps == pytest.approx(24.0)
    assert info.frame_count == 24
    assert info.duration_s == pytest.approx(1.0)
    assert info.codec in {"mp4v", "fmp4"}  # the MPEG-4 part 2 tag, as FFmpeg names it


def test_exif_orientation_is_honoured(tmp_path):
    upright = photo("astronaut", (300, 200))  # landscape as a person should see it
    stored = cv2.rotate(upright, cv2.ROTATE_90_CLOCKWISE)  # the camera stored it sideways…
    path = tmp_path / "sideways.jpg"
    image = Image.fromarray(cv2.cvtColor(stored, cv2.COLOR_BGR2RGB))
    exif = image.getexif()
    exif[0x0112] = 8  # …and says: rotate 90° counter-clockwise to view
    image.save(path, exif=exif.tobytes(), quality=95)
    loaded = load_image(path)
    assert loaded.shape[:2] == (200, 300)
    assert np.abs(loaded.astype(int) - upright.astype(int)).mean() < 8
    info = probe(path)
    assert (info.width, info.height) == (300, 200)


@pytest.mark.parametrize("suffix", [".png", ".webp", ".bmp", ".tiff"])
def test_image_formats(tmp_path, suffix):
    path = tmp_path / f"photo{suffix}"
    Image.fromarray(cv2.cvtColor(photo("coffee", (64, 48)), cv2.COLOR_BGR2RGB)).save(path)
    assert load_image(path).shape == (48, 64, 3)


def test_bad_inputs_name_the_file_and_the_reason(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.touch()
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video")
    good = shots_video(tmp_path / "good.mp4", ["astronaut", "chelsea"], seconds_each=1.0)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    broken_image = tmp_path / "broken.jpg"
    ok, jpeg = cv2.imencode(".jpg", photo())
    broken_image.write_bytes(jpeg.tobytes()[:300])
    folder = tmp_path / "folder.mp4"
    folder.mkdir()
    cases = {
        empty: "empty",
        text: "not a readable video",
        truncated: "not a readable video",
        broken_image: "truncated",
        folder: "not a regular file",
        tmp_path / "missing.png": "does not exist",
    }
    for path, reason in cases.items():
        with pytest.raises(MediaReadError) as caught:
            probe(path) if path.suffix != ".jpg" else load_image(path)
        assert str(path) in str(caught.value)
        assert reason in caught.value.reason


def test_sampling_settings_are_validated():
    with pytest.raises(ValueError):
        Sampling(fps=0)
    with pytest.raises(ValueError):
        Sampling(every_n_frames=0)
    assert Sampling().describe() == "fps=1" and Sampling(every_n_frames=5).describe() == "every=5"
