"""The demo media library and its ground truth: files, decodability, boundaries, EXIF, idempotency."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from media_assets.demo.library import (
    EXIF_ORIENTATION_TAG,
    GROUND_TRUTH_FILE,
    GROUND_TRUTH_VERSION,
    demo_sources,
    write_demo_library,
    write_test_video,
)

CUT_MIN_DIFFERENCE = 30.0  # mean absolute difference (grey levels) across a hard cut
PAN_MAX_DIFFERENCE = 12.0  # ... between consecutive frames inside a slow pan


@dataclass
class DecodedVideo:
    frames: int
    fps: float
    width: int
    height: int
    reported_frames: int
    differences: np.ndarray  # [i] = mean |frame i - frame i-1|, [0] = 0
    brightness: np.ndarray  # [i] = mean grey level of frame i


def decode(path: Path) -> DecodedVideo:
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), path
    fps = capture.get(cv2.CAP_PROP_FPS)
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    reported = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    differences, brightness, previous = [], [], None
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        assert frame.shape == (height, width, 3)
        differences.append(0.0 if previous is None else float(np.mean(cv2.mean(cv2.absdiff(frame, previous))[:3])))
        brightness.append(float(np.mean(cv2.mean(frame)[:3])))
        previous = frame
    capture.release()
    return DecodedVideo(len(brightness), fps, width, height, reported, np.array(differences), np.array(brightness))


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> tuple[Path, dict]:
    media_dir = tmp_path_factory.mktemp("demo") / "media"
    ground_truth_path = write_demo_library(media_dir)
    assert ground_truth_path == media_dir / GROUND_TRUTH_FILE
    return media_dir, json.loads(ground_truth_path.read_text())


@pytest.fixture(scope="module")
def decoded(library) -> dict[str, DecodedVideo]:
    media_dir, truth = library
    return {video["file"]: decode(media_dir / video["file"]) for video in truth["videos"]}


def test_library_has_varied_media_in_folders_and_stays_small(library):
    media_dir, truth = library
    assert truth["version"] == GROUND_TRUTH_VERSION and truth["seed"] == 0
    files = [entry["file"] for entry in truth["videos"] + truth["images"]]
    assert all((media_dir / name).is_file() for name in files)
    assert any("/" in name for name in files) and any("/" not in name for name in files)
    video_suffixes = {Path(video["file"]).suffix for video in truth["videos"]}
    assert {".mp4", ".avi"} <= video_suffixes and video_suffixes & {".mkv", ".webm"}
    assert {Path(image["file"]).suffix for image in truth["images"]} >= {".jpg", ".png", ".webp", ".bmp", ".tiff"}
    assert 4 <= len(truth["videos"]) <= 5 and 4 <= len(truth["images"]) <= 6
    assert sum(path.stat().st_size for path in media_dir.rglob("*") if path.is_file()) < 8_000_000


def test_every_video_decodes_with_the_recorded_frame_count_fps_and_size(library, decoded):
    _, truth = library
    for video in truth["videos"]:
        found = decoded[video["file"]]
        assert found.frames == found.reported_frames == video["frames"], video["file"]
        assert found.fps == pytest.approx(video["fps"], abs=0.01)
        assert (found.width, found.height) == (video["width"], video["height"])
        assert 6.0 <= video["duration"] <= 20.0
        assert video["duration"] == pytest.approx(video["frames"] / video["fps"], abs=1e-5)


def test_boundaries_are_consistent_with_the_shot_list(library):
    _, truth = library
    sources = demo_sources()
    for video in truth["videos"]:
        fps, shots, boundaries = video["fps"], video["shots"], video["boundaries"]
        assert shots[0]["start_frame"] == 0 and shots[-1]["end_frame"] == video["frames"]
        assert len(boundaries) == len(shots) - 1
        for shot in shots:
            assert shot["start_frame"] < shot["end_frame"]
            assert shot["start"] == pytest.approx(shot["start_frame"] / fps, abs=1e-5)
            assert shot["end"] == pytest.approx(shot["end_frame"] / fps, abs=1e-5)
            assert shot["motion"] in {"static", "pan", "zoom", "shake"} and shot["source"] in sources
        for before, after, boundary in zip(shots, shots[1:], boundaries, strict=False):
            assert before["end_frame"] == after["start_frame"] == boundary["frame"]
            assert before["source"] != after["source"]
            assert boundary["time"] == pytest.approx(boundary["frame"] / fps, abs=1e-5)
            assert boundary["type"] in {"cut", "fade", "dissolve"}
            if boundary["type"] == "cut":
                assert "transition_start" not in boundary
                continue
            start, end = boundary["transition_start_frame"], boundary["transition_end_frame"]
            assert before["start_frame"] < start < boundary["frame"] < end < after["end_frame"]
            assert boundary["frame"] - start == end - boundary["frame"]  # the boundary is the middle
            assert boundary["transition_start"] == pytest.approx(start / fps, abs=1e-5)
            assert boundary["transition_end"] == pytest.approx(end / fps, abs=1e-5)


def test_library_covers_every_kind_of_shot_and_transition_with_recurring_sources(library):
    _, truth = library
    videos = truth["videos"]
    assert {shot["motion"] for video in videos for shot in video["shots"]} >= {"static", "pan", "zoom", "shake"}
    assert {b["type"] for video in videos for b in video["boundaries"]} == {"cut", "fade", "dissolve"}
    assert any(len(video["shots"]) == 1 and video["shots"][0]["motion"] != "static" for video in videos)
    videos_per_source: dict[str, set[str]] = {}
    for video in videos:
        for shot in video["shots"]:
            videos_per_source.setdefault(shot["source"], set()).add(video["file"])
    assert sum(len(files) > 1 for files in videos_per_source.values()) >= 2


def test_cuts_are_abrupt_and_pans_are_smooth(library, decoded):
    _, truth = library
    checked_cuts = checked_pans = 0
    for video in truth["videos"]:
        found = decoded[video["file"]]
        for boundary in video["boundaries"]:
            if boundary["type"] == "cut":
                frame = boundary["frame"]
                assert found.differences[frame] > CUT_MIN_DIFFERENCE, (video["file"], frame)
                window = found.differences[frame - 5 : frame + 6]
                assert int(np.argmax(window)) == 5, (video["file"], frame)  # the cut is exactly there
                checked_cuts += 1
        transition_frames = {
            f
            for b in video["boundaries"]
            if b["type"] != "cut"
            for f in range(b["transition_start_frame"], b["transition_end_frame"] + 1)
        }
        for shot in video["shots"]:
            if shot["motion"] == "pan":
                inside = [f for f in range(shot["start_frame"] + 1, shot["end_frame"]) if f not in transition_frames]
                assert found.differences[inside].max() < PAN_MAX_DIFFERENCE, (video["file"], shot)
                checked_pans += 1
    assert checked_cuts >= 3 and checked_pans >= 3


def test_fades_go_through_black_and_dissolves_do_not(library, decoded):
    _, truth = library
    kinds = set()
    for video in truth["videos"]:
        found = decoded[video["file"]]
        for boundary in video["boundaries"]:
            if boundary["type"] == "fade":
                assert found.brightness[boundary["frame"]] < 3
                assert found.brightness[boundary["transition_start_frame"]] > 20
                assert found.brightness[boundary["transition_end_frame"]] > 20
            elif boundary["type"] == "dissolve":
                span = found.brightness[boundary["transition_start_frame"] : boundary["transition_end_frame"] + 1]
                assert span.min() > 20
            kinds.add(boundary["type"])
    assert {"fade", "dissolve"} <= kinds


def test_sideways_jpeg_has_exif_orientation_and_transposes_to_the_recorded_size(library):
    media_dir, truth = library
    sideways = [image for image in truth["images"] if image["exif_orientation"] is not None]
    assert len(sideways) == 1
    entry = sideways[0]
    with Image.open(media_dir / entry["file"]) as stored:
        assert stored.format == "JPEG"
        assert stored.getexif()[EXIF_ORIENTATION_TAG] == entry["exif_orientation"] == 6
        assert stored.size == (entry["height"], entry["width"])  # pixels are stored sideways
        upright = ImageOps.exif_transpose(stored)
    assert upright.size == (entry["width"], entry["height"])
    expected = cv2.resize(demo_sources()[entry["source"]], upright.size, interpolation=cv2.INTER_AREA)
    shown = cv2.cvtColor(np.asarray(upright.convert("RGB")), cv2.COLOR_RGB2BGR)
    assert np.abs(shown.astype(np.int16) - expected).mean() < 8  # upright, not upside down or mirrored


def test_other_images_open_at_the_recorded_size_without_orientation(library):
    media_dir, truth = library
    for entry in truth["images"]:
        if entry["exif_orientation"] is not None:
            continue
        with Image.open(media_dir / entry["file"]) as image:
            assert image.size == (entry["width"], entry["height"]), entry["file"]
            assert EXIF_ORIENTATION_TAG not in image.getexif()
        assert entry["source"] in demo_sources()


def test_second_call_rewrites_nothing(library):
    media_dir, _ = library
    files = sorted(path for path in media_dir.rglob("*") if path.is_file())
    before = {path: path.stat().st_mtime_ns for path in files}
    assert write_demo_library(media_dir) == media_dir / GROUND_TRUTH_FILE
    assert {path: path.stat().st_mtime_ns for path in files} == before
    assert sorted(path for path in media_dir.rglob("*") if path.is_file()) == files


def test_write_test_video_renders_colours_transitions_and_motion(tmp_path):
    shots = [
        {"source": "color:#ff0000", "seconds": 1.0},
        {"source": "astronaut", "seconds": 1.0, "motion": "shake", "transition_in": "dissolve"},
        {"source": "color:#0000ff", "seconds": 1.0, "transition_in": "fade", "transition_seconds": 0.4},
    ]
    truth = write_test_video(tmp_path / "small.avi", shots, fps=25, size=(160, 96), seed=3)
    assert truth["frames"] == 75 and truth["file"] == str(tmp_path / "small.avi")
    assert [b["type"] for b in truth["boundaries"]] == ["dissolve", "fade"]
    assert truth["boundaries"][1] == {
        "time": 2.0,
        "frame": 50,
        "type": "fade",
        "transition_start": 1.8,
        "transition_end": 2.2,
        "transition_start_frame": 45,
        "transition_end_frame": 55,
    }
    capture = cv2.VideoCapture(str(tmp_path / "small.avi"))
    frames = []
    while (read := capture.read())[0]:
        frames.append(read[1])
    assert len(frames) == 75
    assert np.allclose(frames[5].mean(axis=(0, 1)), (0, 0, 255), atol=6)  # BGR red
    assert np.allclose(frames[70].mean(axis=(0, 1)), (255, 0, 0), atol=6)  # BGR blue
    assert frames[50].mean() < 3


def test_write_test_video_is_deterministic_for_a_seed(tmp_path):
    shots = [
        {"source": "chelsea", "seconds": 0.5, "motion": "static"},
        {"source": "coffee", "seconds": 0.5, "motion": "pan"},
    ]
    first = write_test_video(tmp_path / "a.mp4", shots, seed=7)
    second = write_test_video(tmp_path / "b.mp4", shots, seed=7)
    assert first | {"file": ""} == second | {"file": ""}
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()


@pytest.mark.parametrize(
    "shots, message",
    [
        ([], "at least one shot"),
        ([{"source": "astronaut", "motion": "spin"}], "motion"),
        ([{"source": "nowhere"}], "unknown source"),
        ([{"source": "astronaut", "colour": "red"}], "unknown keys"),
        (
            [{"source": "astronaut", "seconds": 0.2}, {"source": "coffee", "transition_in": "dissolve"}],
            "too short",
        ),
    ],
)
def test_write_test_video_rejects_bad_shot_lists(tmp_path, shots, message):
    with pytest.raises(ValueError, match=message):
        write_test_video(tmp_path / "bad.mp4", shots)
    assert not list(tmp_path.iterdir())
