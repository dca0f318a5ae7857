"""Shot boundaries, static/dynamic shots, keyframes and events (`media_assets.models.shots`).

Small 320x180 videos from `demo.write_test_video` go through the real frames stage (`extract_frames`,
sampled at 4 frames/s) and `detect_shots_in_frames` reads the rows it wrote. Vectors are synthetic (one
random unit vector per source photograph plus noise; the tests' CLIP model has random weights), and the
event and fusion tests feed synthetic arrays directly.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from media_assets.demo import library as demo
from media_assets.media.decoding import Sampling
from media_assets.media.discovery import stat_media_file
from media_assets.models.shots import (
    ShotSettings,
    detect_shots,
    detect_shots_in_frames,
    frame_embedding_matrix,
    shot_embedding,
)
from media_assets.stages.frames import FrameSettings, extract_frames
from media_assets.warehouse import Warehouse

FPS = 4.0  # sampling rate of the frames stage in these tests


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Warehouse:
    root = tmp_path_factory.mktemp("shots")
    return Warehouse.at(root / "wh", media_root=root / "media", vectors_uri=str(root / "vectors")).ensure()


def _extract(warehouse: Warehouse, path: Path):
    result = extract_frames(warehouse, stat_media_file(path, warehouse.media_root), FrameSettings(Sampling(fps=FPS)))
    return result.frames, result.media["duration_s"]


def _video(warehouse: Warehouse, name: str, shots: list[dict], seed: int = 0, post=None):
    """Write a test video, optionally post-process its frames, run the frames stage; returns
    (truth, frames table, duration)."""
    path = warehouse.media_root / f"{name}.mp4"
    truth = demo.write_test_video(path, shots, fps=30.0, size=(320, 180), seed=seed)
    if post is not None:
        post(path)
    frames, duration = _extract(warehouse, path)
    return truth, frames, duration


def _flash(path: Path, first_frame: int, strengths=(0.6, 0.95, 0.95, 0.6)) -> None:
    """Re-encode `path` with frames from `first_frame` on blended towards white (a camera flash)."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    white = np.full_like(frames[0], 255)
    for k, alpha in enumerate(strengths):
        frames[first_frame + k] = cv2.addWeighted(frames[first_frame + k], 1 - alpha, white, alpha, 0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (frames[0].shape[1], frames[0].shape[0]))
    for frame in frames:
        writer.write(frame)
    writer.release()


def _truth_seq(frames, time_s: float) -> int:
    """The first sampled frame at or after `time_s`."""
    times = frames["timestamp_s"].to_numpy()
    return int(np.searchsorted(times, time_s - 1e-6))


def _source_vectors(truth: dict, frames, dim: int = 64, seed: int = 0) -> np.ndarray:
    """Synthetic vectors: one random unit vector per source photograph (+ noise), mixed inside
    transitions by the transition's weight, one row per sampled frame."""
    rng = np.random.default_rng(seed)
    sources = {s["source"] for s in truth["shots"]}
    base = {name: v / np.linalg.norm(v) for name, v in ((n, rng.standard_normal(dim)) for n in sorted(sources))}
    starts = np.array([s["start_frame"] for s in truth["shots"]])
    out = []
    for frame in frames["frame_index"].to_numpy():
        k = int(np.searchsorted(starts, frame, side="right") - 1)
        vector = base[truth["shots"][k]["source"]].copy()
        for b, boundary in enumerate(truth["boundaries"]):
            if (
                boundary["type"] != "cut"
                and boundary["transition_start_frame"] < frame < boundary["transition_end_frame"]
            ):
                w = (frame - boundary["transition_start_frame"]) / (
                    boundary["transition_end_frame"] - boundary["transition_start_frame"]
                )
                vector = (1 - w) * base[truth["shots"][b]["source"]] + w * base[truth["shots"][b + 1]["source"]]
        vector = vector + rng.standard_normal(dim) * 0.02
        out.append(vector / np.linalg.norm(vector))
    return np.asarray(out, dtype=np.float32)


# -- videos ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cuts_video(warehouse):
    shots = [
        {"source": "astronaut", "seconds": 2.0, "motion": "static"},
        {"source": "coffee", "seconds": 2.0, "motion": "pan"},
        {"source": "rocket", "seconds": 2.0, "motion": "zoom"},
        {"source": "chelsea", "seconds": 2.0, "motion": "shake"},
        {"source": "retina", "seconds": 2.5, "motion": "static"},
    ]
    return _video(warehouse, "cuts", shots, seed=1)


@pytest.fixture(scope="module")
def gradual_video(warehouse):
    shots = [
        {"source": "astronaut", "seconds": 2.5, "motion": "static"},
        {"source": "chelsea", "seconds": 2.5, "motion": "static", "transition_in": "fade", "transition_seconds": 1.0},
        {"source": "coffee", "seconds": 2.5, "motion": "pan", "transition_in": "dissolve", "transition_seconds": 1.0},
    ]
    return _video(warehouse, "gradual", shots, seed=2)


@pytest.fixture(scope="module")
def motion_video(warehouse):
    """A fast pan (0.6 frame widths/s), a 2x zoom and a strong handheld shake, joined by two cuts."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(demo, "PAN_SPEED", 0.6)
        patch.setattr(demo, "SHAKE_AMPLITUDE", 0.06)
        patch.setitem(demo._CANVAS_COVER, "pan", 2.8)
        patch.setitem(demo._CANVAS_COVER, "zoom", 2.0)
        patch.setitem(demo._CANVAS_COVER, "shake", 1.3)
        shots = [
            {"source": "motorcycle", "seconds": 3.0, "motion": "pan"},
            {"source": "coffee", "seconds": 3.0, "motion": "zoom"},
            {"source": "chelsea", "seconds": 3.0, "motion": "shake"},
        ]
        return _video(warehouse, "motion", shots, seed=3)


@pytest.fixture(scope="module")
def flash_video(warehouse):
    """A still shot with a camera flash at 2 s (frames 59-62; the 4 frames/s sampling keeps frame 60),
    then a cut to a pan with another flash at 5 s (frames 149-152; frame 150 is kept)."""
    shots = [
        {"source": "astronaut", "seconds": 3.5, "motion": "static"},
        {"source": "coffee", "seconds": 3.0, "motion": "pan"},
    ]

    def flashes(path: Path) -> None:
        _flash(path, 59)
        _flash(path, 149)

    return _video(warehouse, "flash", shots, seed=4, post=flashes)


# -- boundaries --------------------------------------------------------------------------------------


def test_hard_cuts_are_found_within_one_sampled_frame(cuts_video):
    truth, frames, duration = cuts_video
    shots, events = detect_shots_in_frames(frames, duration_s=duration)
    assert events == []  # no vectors, no events
    expected = [_truth_seq(frames, b["time"]) for b in truth["boundaries"]]
    found = [s.start_seq for s in shots[1:]]
    assert len(found) == len(expected) == 4
    assert all(abs(f - e) <= 1 for f, e in zip(found, expected, strict=True)), (found, expected)
    assert [s.transition for s in shots] == ["start", "cut", "cut", "cut", "cut"]
    # shots tile the sampled frames and the video's time
    assert shots[0].start_seq == 0 and shots[-1].end_seq == len(frames) - 1
    assert all(a.end_seq + 1 == b.start_seq and a.end_s == b.start_s for a, b in zip(shots, shots[1:], strict=False))
    assert shots[-1].end_s == pytest.approx(duration)
    assert shots[0].boundary_confidence == 1.0 and all(0.5 <= s.boundary_confidence <= 1.0 for s in shots[1:])


def test_fade_and_dissolve_are_found_once_each(gradual_video):
    truth, frames, duration = gradual_video
    shots, _ = detect_shots_in_frames(frames, duration_s=duration)
    times = frames["timestamp_s"].to_numpy()
    assert len(shots) == 3, [(s.start_s, s.transition) for s in shots]
    tolerance = 1.0 / FPS + 1e-6
    for shot, boundary in zip(shots[1:], truth["boundaries"], strict=True):
        start_time = times[shot.start_seq]
        assert boundary["transition_start"] - tolerance <= start_time <= boundary["transition_end"] + tolerance
    fade, dissolve = shots[1], shots[2]
    assert fade.transition == "fade"
    # the fade's boundary is its black frame (the middle of the transition)
    assert abs(times[fade.start_seq] - truth["boundaries"][0]["time"]) <= tolerance
    assert dissolve.transition == "dissolve"


def test_fast_pan_zoom_and_shake_are_not_cut(motion_video):
    truth, frames, duration = motion_video
    shots, _ = detect_shots_in_frames(frames, duration_s=duration)
    expected = [_truth_seq(frames, b["time"]) for b in truth["boundaries"]]
    found = [s.start_seq for s in shots[1:]]
    assert len(found) == 2 and all(abs(f - e) <= 1 for f, e in zip(found, expected, strict=True)), (found, expected)
    assert [s.kind for s in shots] == ["dynamic", "dynamic", "dynamic"]


def test_flashes_are_not_cut(flash_video):
    truth, frames, duration = flash_video
    change = frames["change_score"].to_numpy()
    flash_seqs = [_truth_seq(frames, 2.0), _truth_seq(frames, 5.0)]
    # the flashes are visible to the frames stage: the histogram jumps both ways like at a cut
    assert all(change[k] > 0.5 and change[k + 1] > 0.5 for k in flash_seqs)
    shots, _ = detect_shots_in_frames(frames, duration_s=duration)
    assert [s.start_seq for s in shots[1:]] == [_truth_seq(frames, truth["boundaries"][0]["time"])]
    # with vectors (a flashed frame's vector moves towards "white", then comes back) still no flash cut
    vectors = _source_vectors(truth, frames)
    white = np.random.default_rng(9).standard_normal(vectors.shape[1])
    for k in flash_seqs:
        mixed = 0.4 * vectors[k] + 0.6 * white / np.linalg.norm(white)
        vectors[k] = mixed / np.linalg.norm(mixed)
    shots, events = detect_shots_in_frames(frames, frames["frame_id"].to_numpy(), vectors, duration_s=duration)
    assert [s.start_seq for s in shots[1:]] == [_truth_seq(frames, truth["boundaries"][0]["time"])]
    assert events == []


def test_vectors_are_used_only_when_they_see_the_clear_cuts(cuts_video):
    truth, frames, duration = cuts_video
    seen = {}
    detect_shots_in_frames(
        frames, frames["frame_id"].to_numpy(), _source_vectors(truth, frames), duration_s=duration, report=seen
    )
    assert seen["vectors_used"] and "clear visual boundaries" in seen["vectors_note"]
    # vectors that barely move across the cuts (a model that sees every picture alike) are left out
    rng = np.random.default_rng(3)
    common = rng.standard_normal(64)
    blind = common + 0.05 * rng.standard_normal((len(frames), 64))
    ignored = {}
    shots, events = detect_shots_in_frames(
        frames, frames["frame_id"].to_numpy(), blind, duration_s=duration, report=ignored
    )
    visual, _ = detect_shots_in_frames(frames, duration_s=duration)
    assert not ignored["vectors_used"] and "at least 0.150 needed" in ignored["vectors_note"]
    assert [(s.start_seq, s.transition) for s in shots] == [
        (s.start_seq, s.transition) for s in visual
    ] and events == []
    none = {}
    detect_shots_in_frames(frames, duration_s=duration, report=none)
    assert none == {"vectors_used": False, "vectors_note": "no vectors given"}


def test_vectors_keep_the_same_boundaries_on_clear_videos(cuts_video, gradual_video):
    for truth, frames, duration in (cuts_video, gradual_video):
        visual, _ = detect_shots_in_frames(frames, duration_s=duration)
        vectors = _source_vectors(truth, frames)
        fused, events = detect_shots_in_frames(frames, frames["frame_id"].to_numpy(), vectors, duration_s=duration)
        assert [s.start_seq for s in fused] == [s.start_seq for s in visual]
        assert events == []


# -- static / dynamic and keyframes --------------------------------------------------------------------


def test_static_and_dynamic_shots_and_their_keyframes(cuts_video):
    truth, frames, duration = cuts_video
    shots, _ = detect_shots_in_frames(frames, duration_s=duration)
    assert [s.kind for s in shots] == ["static", "dynamic", "dynamic", "dynamic", "static"]
    assert [s.kind for s in shots] == ["static" if t["motion"] == "static" else "dynamic" for t in truth["shots"]]
    for shot in shots:
        assert all(shot.start_seq <= k <= shot.end_seq for k in shot.keyframe_seqs)
        if shot.kind == "static":
            # one keyframe: the middle of the shot
            assert len(shot.keyframe_seqs) == 1
            assert abs(shot.keyframe_seqs[0] - (shot.start_seq + shot.end_seq) / 2) <= 1
        else:
            # start, middle, end
            first, middle, last = shot.keyframe_seqs
            assert first == shot.start_seq and last == shot.end_seq and first < middle < last
    static_motion = max(s.motion for s in shots if s.kind == "static")
    assert static_motion <= ShotSettings().static_max_motion < min(s.motion for s in shots if s.kind == "dynamic")


def test_keyframes_skip_transition_frames(gradual_video):
    truth, frames, duration = gradual_video
    shots, _ = detect_shots_in_frames(frames, duration_s=duration)
    sharpness = frames["sharpness"].to_numpy()
    black = shots[1].start_seq
    assert sharpness[black] < 1.0  # the fade's black frame starts the second shot ...
    assert black not in shots[1].keyframe_seqs  # ... but is not its keyframe
    assert all(sharpness[k] > 5.0 for s in shots for k in s.keyframe_seqs)


def test_static_threshold_is_configurable(cuts_video):
    _, frames, duration = cuts_video
    shots, _ = detect_shots_in_frames(frames, settings=ShotSettings(static_max_motion=1.0), duration_s=duration)
    assert {s.kind for s in shots} == {"static"} and all(len(s.keyframe_seqs) == 1 for s in shots)


# -- events and fusion on synthetic signals ------------------------------------------------------------


def _still_signals(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    times = np.arange(n, dtype=float)  # 1 frame/s
    change = rng.uniform(0.0, 0.04, n)
    pixel = rng.uniform(0.0, 0.002, n)
    return times, change, pixel


def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_event_when_the_vectors_jump_but_the_pictures_barely_change():
    n = 40
    times, change, pixel = _still_signals(n)
    rng = np.random.default_rng(1)
    slide_a, slide_b = _unit(rng.standard_normal(32)), _unit(rng.standard_normal(32))
    slide_b = _unit(slide_a + 1.2 * slide_b)  # cosine ≈ 0.6: the same template, a new slide
    vectors = np.stack([slide_a if i < 20 else slide_b for i in range(n)]) + rng.standard_normal((n, 32)) * 0.01
    shots, events = detect_shots(times, change, pixel, vectors)
    assert len(shots) == 1 and shots[0].kind == "static" and len(shots[0].keyframe_seqs) == 1
    assert [e.seq for e in events] == [20] and events[0].time_s == 20.0 and 0.5 <= events[0].score <= 1.0
    # no vectors: no events; a one-frame semantic blip that comes back: no event either
    assert detect_shots(times, change, pixel, None)[1] == []
    blip = np.stack([slide_a] * n) + rng.standard_normal((n, 32)) * 0.01
    blip[10] = slide_b
    assert detect_shots(times, change, pixel, blip)[1] == []


def test_vectors_veto_a_medium_visual_change_and_confirm_a_weak_one():
    n = 40
    times, change, pixel = _still_signals(n, seed=2)
    rng = np.random.default_rng(3)
    a, b = _unit(rng.standard_normal(32)), _unit(rng.standard_normal(32))
    # a medium histogram jump (a light switched on): a cut for the pictures alone ...
    medium = change.copy()
    medium[12] = 0.33
    assert [s.start_seq for s in detect_shots(times, medium, pixel, None)[0]] == [0, 12]
    # ... but the vectors see the same content on both sides: no cut, no event
    same = np.stack([a] * n) + rng.standard_normal((n, 32)) * 0.01
    shots, events = detect_shots(times, medium, pixel, same)
    assert len(shots) == 1 and events == []
    # a weak histogram change (two look-alike shots) is no cut for the pictures alone ...
    weak = change.copy()
    weak[25] = 0.2
    assert len(detect_shots(times, weak, pixel, None)[0]) == 1
    # ... and a cut when the vectors change completely there
    switch = np.stack([a if i < 25 else b for i in range(n)]) + rng.standard_normal((n, 32)) * 0.01
    shots, events = detect_shots(times, weak, pixel, switch)
    assert [s.start_seq for s in shots] == [0, 25] and events == []


def test_a_strong_hard_cut_stands_whatever_the_vectors_say():
    n = 30
    times, change, pixel = _still_signals(n, seed=4)
    change[15] = 0.9
    same = np.tile(_unit(np.ones(16)), (n, 1))
    assert [s.start_seq for s in detect_shots(times, change, pixel, same)[0]] == [0, 15]


# -- helpers and edge cases ----------------------------------------------------------------------------


def test_duplicates_take_their_kept_frames_vector(cuts_video):
    _, frames, _ = cuts_video
    kept = frames.filter(np.invert(frames["is_duplicate"].to_numpy(zero_copy_only=False)))
    ids = kept["frame_id"].to_numpy()
    vectors = np.random.default_rng(0).standard_normal((len(ids), 8)).astype(np.float32)
    matrix = frame_embedding_matrix(frames, ids, vectors)
    by_id = dict(zip(ids.tolist(), vectors, strict=True))
    for row, (frame_id, duplicate_of) in enumerate(
        zip(frames["frame_id"].to_pylist(), frames["duplicate_of"].to_pylist(), strict=True)
    ):
        np.testing.assert_array_equal(matrix[row], by_id[duplicate_of if duplicate_of is not None else frame_id])
    # a frame without a vector (an unreadable thumbnail) gets a NaN row, which detection tolerates
    matrix = frame_embedding_matrix(frames, ids[1:], vectors[1:])
    assert np.isnan(matrix[0]).all()
    detect_shots_in_frames(frames, ids[1:], vectors[1:])
    with pytest.raises(ValueError, match="both"):
        detect_shots_in_frames(frames, ids)  # vectors missing


def test_shot_embedding_is_the_normalised_mean():
    vectors = np.array([[3.0, 0.0], [0.0, 0.5]])
    np.testing.assert_allclose(shot_embedding(vectors), np.array([1.0, 1.0]) / np.sqrt(2), rtol=1e-6)
    np.testing.assert_allclose(shot_embedding(np.array([0.0, 2.0])), [0.0, 1.0])
    assert shot_embedding(vectors).dtype == np.float32
    with pytest.raises(ValueError):
        shot_embedding(np.zeros((0, 4)))
    with pytest.raises(ValueError):
        shot_embedding(np.array([[1.0, 0.0], [-1.0, 0.0]]))


def test_edge_cases():
    assert detect_shots([], [], [], None) == ([], [])
    shots, events = detect_shots([0.0], [0.0], [0.0], None, duration_s=0.5)
    assert len(shots) == 1 and shots[0].start_seq == shots[0].end_seq == 0 and shots[0].end_s == 0.5
    assert shots[0].keyframe_seqs == [0] and events == []
    with pytest.raises(ValueError, match="change_score"):
        detect_shots([0.0, 1.0], [0.0], [0.0, 0.0], None)
    with pytest.raises(ValueError, match="embeddings"):
        detect_shots([0.0, 1.0], [0.0, 0.0], [0.0, 0.0], np.zeros((3, 4)))
    with pytest.raises(ValueError):
        ShotSettings(cut_delta=0.05)  # below weak_delta
    # a cut too close to the start is dropped (minimum shot length)
    times = np.arange(10) * 0.25
    change = np.full(10, 0.02)
    change[1] = 0.9
    assert len(detect_shots(times, change, np.zeros(10), None)[0]) == 1
