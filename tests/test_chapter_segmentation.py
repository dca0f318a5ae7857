"""Chapters from transcripts, slide changes, shot cuts and pauses (`media_assets.models.chapters`).

Pure numpy, no model: sentence vectors are drawn around a few random topic directions with noise, so the
topic boundaries are known; slide changes, cuts and pauses are placed by hand. Every random input is seeded.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from media_assets.models.chapters import (
    SIGNALS,
    ChapterSettings,
    Segment,
    chapter_lengths,
    depth_scores,
    find_chapters,
    slide_changes,
)

DIM = 64


def _lecture(rng, topic_sizes, *, noise=1.0, pause_s=(0.1, 0.6), boundary_pause_s=0.0, lead_s=2.0):
    """Sentences of 3-7 s with short pauses; topic k's vectors scatter around a random unit direction.
    Returns (starts, ends, vectors float32, times of the true boundaries: the middle of each topic's first
    silence, duration)."""
    directions = rng.normal(size=(len(topic_sizes), DIM))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    topic = np.repeat(np.arange(len(topic_sizes)), topic_sizes)
    vectors = directions[topic] + noise * rng.normal(size=(len(topic), DIM)) / np.sqrt(DIM)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    n = len(topic)
    lengths = rng.uniform(3.0, 7.0, n)
    pauses = rng.uniform(*pause_s, n)
    firsts = np.cumsum(topic_sizes)[:-1]  # first sentence of each new topic
    pauses[firsts - 1] += boundary_pause_s
    starts = lead_s + np.concatenate([[0.0], np.cumsum(lengths + pauses)[:-1]])
    ends = starts + lengths
    truth = (ends[firsts - 1] + starts[firsts]) / 2.0
    return starts, ends, vectors.astype(np.float32), truth, float(ends[-1] + 2.0)


def _chapters(duration, starts, ends, vectors, **kwargs) -> list[Segment]:
    return find_chapters(duration, sentence_starts=starts, sentence_ends=ends, sentence_vectors=vectors, **kwargs)


def _boundaries(segments: list[Segment]) -> np.ndarray:
    return np.array([segment.start_s for segment in segments[1:]])


def _assert_tiles(segments: list[Segment], duration: float) -> None:
    assert segments[0].start_s == 0.0
    assert segments[-1].end_s == duration
    assert segments[0].sources == ("start",) and segments[0].score == 0.0
    for before, after in zip(segments, segments[1:], strict=False):
        assert before.end_s == after.start_s
    for segment in segments:
        assert segment.end_s > segment.start_s
    for segment in segments[1:]:
        assert segment.sources, segment
        allowed = set(SIGNALS) | {"length"}
        assert set(segment.sources) <= allowed, segment
        assert "length" not in segment.sources[1:], segment


def _no_sentence_cut(segments: list[Segment], starts, ends, duration) -> None:
    clipped_starts, clipped_ends = np.clip(starts, 0, duration), np.clip(ends, 0, duration)
    for segment in segments[1:]:
        if segment.sources == ("length",):
            continue
        inside = (clipped_starts < segment.start_s - 1e-9) & (clipped_ends > segment.start_s + 1e-9)
        assert not inside.any(), (segment, np.flatnonzero(inside))


# -- depth_scores ---------------------------------------------------------------------------------------


def test_depth_scores_on_a_hand_made_case():
    a, b = np.eye(2)
    # block 1: similarities 1, 0, 1 -> the valley is 1 + 1 deep, the peaks 0
    assert depth_scores(np.stack([a, a, b, b]), 1) == pytest.approx([0.0, 2.0, 0.0])
    # block 2: cos(a, (a+b)/2) = 1/sqrt(2) either side of the valley at 0
    r = 1 / math.sqrt(2)
    assert depth_scores(np.stack([a, a, b, b]), 2) == pytest.approx([0.0, 2 * r, 0.0])
    # climbing goes on across a plateau and stops where the similarity falls again
    # similarities 1, 1, 0.6, 0.8, 1: the valley at 0.6 climbs the plateau on the left; the gap at 0.8 stops
    # at once on its left (0.6 is lower) and is only 0.2 deep
    c = np.array([0.6, 0.8])
    assert depth_scores(np.stack([a, a, a, c, b, b]), 1) == pytest.approx([0.0, 0.0, 0.8, 0.2, 0.0])


def test_depth_scores_of_fewer_than_two_sentences_are_empty():
    assert depth_scores(np.zeros((0, 8)), 3).shape == (0,)
    assert depth_scores(np.ones((1, 8)), 3).shape == (0,)
    with pytest.raises(ValueError, match="2-D"):
        depth_scores(np.ones(8), 3)
    with pytest.raises(ValueError, match="block"):
        depth_scores(np.ones((4, 8)), 0)


# -- slide_changes ---------------------------------------------------------------------------------------


def test_slide_changes_on_a_hand_made_sequence():
    readings = [
        (0.0, ["Intro to Optics", "Lecture 1"]),
        (5.0, ["intro to optics!", "LECTURE 1"]),  # case and punctuation do not count
        (10.0, []),  # one read without text: noise
        (15.0, ["Intro to Optics", "Lecture 1"]),  # the same slide back: no change
        (20.0, ["Refraction", "Snell's law"]),  # new slide: words {refraction, snell, s, law}
        (25.0, ["Refraction", "Snell's law", "n1 sin a = n2 sin b"]),  # a line added: 5 of 9 words new
        (30.0, []),
        (35.0, []),
        (40.0, ["Lenses", "Focal length"]),  # after the blank stretch: compared with the last text
    ]
    # {refraction, snell, s, law} against {intro, to, optics, lecture, 1}: nothing in common, strength 1;
    # the added line: Jaccard 4/9, strength 5/9; the lenses slide against the last text read: 1
    assert slide_changes(readings) == [(20.0, 1.0), (25.0, pytest.approx(5 / 9)), (40.0, 1.0)]
    assert slide_changes(readings, min_change=0.6) == [(20.0, 1.0), (40.0, 1.0)]


def test_slide_changes_first_text_and_order():
    # the first text of the file is a change only after a stretch without text (two reads or more)
    assert slide_changes([(0.0, ["Title"]), (5.0, ["Title"])]) == []
    assert slide_changes([(0.0, []), (5.0, ["Title"])]) == []
    assert slide_changes([(0.0, []), (5.0, []), (10.0, ["Title"])]) == [(10.0, 1.0)]
    # readings out of order are sorted first; a bare string is one line
    assert slide_changes([(10.0, "Second slide"), (0.0, "First slide")]) == [(10.0, pytest.approx(2 / 3))]
    with pytest.raises(ValueError, match="min_change"):
        slide_changes([], min_change=0.0)
    with pytest.raises(ValueError, match="reading 0"):
        slide_changes([(float("nan"), ["x"])])
    with pytest.raises(ValueError, match="reading 0"):
        slide_changes([5.0])


# -- lengths ---------------------------------------------------------------------------------------------


def test_chapter_lengths_suit_short_clips_and_long_lectures():
    assert chapter_lengths(300.0) == (20.0, 120.0)
    assert chapter_lengths(1800.0) == (90.0, 720.0)
    assert chapter_lengths(7200.0) == (180.0, 1200.0)
    assert chapter_lengths(60.0) == (20.0, 90.0)
    assert chapter_lengths(300.0, ChapterSettings(min_chapter_s=30.0, max_chapter_s=45.0)) == (30.0, 45.0)
    # only one given: the other default keeps max >= 2 min
    assert chapter_lengths(300.0, ChapterSettings(min_chapter_s=100.0)) == (100.0, 200.0)
    assert chapter_lengths(7200.0, ChapterSettings(max_chapter_s=300.0)) == (150.0, 300.0)
    with pytest.raises(ValueError, match="duration_s"):
        chapter_lengths(0.0)


# -- topic boundaries -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_topic_boundaries_are_found_within_10_s(seed):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(35, 55, size=int(rng.integers(2, 5)))
    starts, ends, vectors, truth, duration = _lecture(rng, sizes)
    # topics of 3-5 minutes: the default max length of a 2-topic file (duration / 2.5) would split them
    segments = _chapters(duration, starts, ends, vectors, settings=ChapterSettings(max_chapter_s=600.0))
    _assert_tiles(segments, duration)
    found = _boundaries(segments)
    assert len(found) == len(truth), (found, truth)
    assert np.abs(found - truth).max() <= 10.0, (found, truth)
    assert all("transcript" in segment.sources for segment in segments[1:])


def test_a_slide_change_inside_a_topic_does_not_split_it():
    rng = np.random.default_rng(20)
    starts, ends, vectors, truth, duration = _lecture(rng, [50, 45])
    settings = ChapterSettings(max_chapter_s=600.0)  # both topics fit in one chapter each
    # where the text runs on: the inner gap of the first topic with the shallowest TextTiling depth
    depths = depth_scores(vectors, settings.block_sentences)
    gap = 10 + int(np.argmin(depths[10:40]))
    slide_time = (ends[gap] + starts[gap + 1]) / 2.0
    segments = _chapters(duration, starts, ends, vectors, slide_changes=[(slide_time, 1.0)], settings=settings)
    found = _boundaries(segments)
    assert len(found) == 1 and abs(found[0] - truth[0]) <= 10.0, (found, truth)
    # the same slide change is a boundary once the transcript weighs nothing: the weights decide
    alone = dataclasses.replace(settings, text_weight=0.0, silence_weight=0.0)
    segments = _chapters(duration, starts, ends, vectors, slide_changes=[(slide_time, 1.0)], settings=alone)
    assert list(_boundaries(segments)) == [pytest.approx(slide_time)]
    assert segments[1].sources == ("slides",)


def test_a_slide_change_at_a_topic_boundary_sets_its_time():
    rng = np.random.default_rng(21)
    starts, ends, vectors, truth, duration = _lecture(rng, [45, 50], boundary_pause_s=3.0)
    settings = ChapterSettings(max_chapter_s=600.0)
    last = 44  # the last sentence of the first topic
    silence = (ends[last], starts[last + 1])
    # in the silence: the chapter starts when the slide appears
    slide_time = silence[0] + 0.7
    segments = _chapters(duration, starts, ends, vectors, slide_changes=[(slide_time, 0.9)], settings=settings)
    assert len(segments) == 2
    assert segments[1].start_s == pytest.approx(slide_time)
    assert segments[1].sources == ("transcript", "slides", "silence")
    assert segments[1].score == pytest.approx(1.0 + 0.6 * 0.9 + 0.3)  # a clear valley, the slide, 3 s of silence
    # while the speaker is still finishing the sentence: as close as possible, at the sentence's end
    early = ends[last] - 2.0
    segments = _chapters(duration, starts, ends, vectors, slide_changes=[(early, 0.9)], settings=settings)
    assert segments[1].start_s == pytest.approx(ends[last])
    # after the next sentence began: at that sentence's start, never in the middle of it
    late = starts[last + 1] + 1.5
    segments = _chapters(duration, starts, ends, vectors, slide_changes=[(late, 0.9)], settings=settings)
    assert segments[1].start_s == pytest.approx(starts[last + 1])
    # without the slide: the middle of the silence
    segments = _chapters(duration, starts, ends, vectors, settings=settings)
    assert segments[1].start_s == pytest.approx(sum(silence) / 2.0)


def test_text_is_not_needed_where_nobody_speaks():
    # slides only (a silent slideshow): strong slide changes are the chapters
    duration = 600.0
    shown = [(60.0, 1.0), (200.0, 0.95), (210.0, 0.3), (420.0, 1.0)]
    segments = find_chapters(
        duration,
        sentence_starts=np.zeros(0),
        sentence_ends=np.zeros(0),
        sentence_vectors=np.zeros((0, DIM), np.float32),
        slide_changes=shown,
    )
    _assert_tiles(segments, duration)
    assert list(_boundaries(segments)) == [60.0, 200.0, 420.0]
    assert all(segment.sources == ("slides",) for segment in segments[1:])


# -- lengths and fallbacks --------------------------------------------------------------------------------


def test_min_and_max_lengths_are_honoured():
    rng = np.random.default_rng(30)
    starts, ends, vectors, truth, duration = _lecture(rng, [8, 70, 6, 40, 90])  # short and long topics
    settings = ChapterSettings(min_chapter_s=60.0, max_chapter_s=150.0)
    segments = _chapters(duration, starts, ends, vectors, settings=settings)
    _assert_tiles(segments, duration)
    lengths = np.array([segment.end_s - segment.start_s for segment in segments])
    assert lengths.min() >= 60.0 - 1e-9 and lengths.max() <= 150.0 + 1e-9, lengths
    _no_sentence_cut(segments, starts, ends, duration)


def test_a_file_shorter_than_the_minimum_is_one_chapter():
    rng = np.random.default_rng(31)
    starts, ends, vectors, truth, duration = _lecture(rng, [6, 6])
    segments = _chapters(duration, starts, ends, vectors, settings=ChapterSettings(min_chapter_s=duration + 1))
    assert segments == [Segment(0.0, duration, ("start",), 0.0)]


def test_a_long_stretch_without_candidates_gets_even_length_boundaries():
    rng = np.random.default_rng(32)
    starts, ends, vectors, truth, duration = _lecture(rng, [40, 40])
    music = 1800.0  # half an hour of music after the first topic: no sentence, no slide, no cut
    starts, ends = starts.copy(), ends.copy()
    starts[40:] += music
    ends[40:] += music
    duration += music
    segments = _chapters(duration, starts, ends, vectors)
    _assert_tiles(segments, duration)
    _, max_len = chapter_lengths(duration)
    forced = [segment for segment in segments if segment.sources == ("length",)]
    assert forced, segments
    assert all(ends[39] < segment.start_s < starts[40] for segment in forced)  # in the music
    assert max(segment.end_s - segment.start_s for segment in segments) <= max_len + 1e-9
    assert any(abs(segment.start_s - truth[0] - music / 2) < 1e-6 for segment in segments)  # the gap itself


def test_shots_only_files_are_groups_of_shots():
    duration = 900.0
    rng = np.random.default_rng(33)
    weak = [(float(t), 0.55) for t in np.arange(10.0, duration, 10.0)]
    strong = {120.0, 300.0, 420.0, 610.0, 780.0}
    cuts = [(t, 1.0 if t in strong else c) for t, c in weak]
    rng.shuffle(cuts)  # any order
    segments = find_chapters(
        duration,
        sentence_starts=np.zeros(0),
        sentence_ends=np.zeros(0),
        sentence_vectors=np.zeros((0, DIM), np.float32),
        shot_boundaries=cuts,
    )
    _assert_tiles(segments, duration)
    min_len, max_len = chapter_lengths(duration)
    assert set(_boundaries(segments)) == strong
    assert all(segment.sources == ("shots",) for segment in segments[1:])
    assert all(min_len <= segment.end_s - segment.start_s <= max_len for segment in segments)


@pytest.mark.parametrize(("duration", "pieces"), [(80.0, 1), (300.0, 3), (7200.0, 6), (9000.0, 8)])
def test_no_signals_at_all_gives_even_pieces(duration, pieces):
    segments = find_chapters(
        duration, sentence_starts=[], sentence_ends=[], sentence_vectors=np.zeros((0, DIM), np.float32)
    )
    _assert_tiles(segments, duration)
    assert len(segments) == pieces
    lengths = [segment.end_s - segment.start_s for segment in segments]
    assert lengths == pytest.approx([duration / pieces] * pieces)
    assert all(segment.sources == ("length",) and segment.score == 0.0 for segment in segments[1:])


# -- robustness -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(25))
def test_chapters_tile_the_file_whatever_the_input(seed):
    rng = np.random.default_rng(100 + seed)
    duration = float(rng.choice([15.0, 90.0, 400.0, 2500.0]) * rng.uniform(0.8, 1.2))
    n = int(rng.choice([0, 1, 2, 5, 60, 300]))
    starts = np.sort(rng.uniform(-5.0, duration * 1.1, n))  # some before 0, some beyond the end
    ends = np.minimum(starts + rng.uniform(0.0, 12.0, n), np.append(starts[1:], np.inf))
    vectors = rng.normal(size=(n, 16)).astype(np.float32)
    order = rng.permutation(n)  # unsorted input
    shown = [
        (float(t), float(s)) for t, s in zip(rng.uniform(-10, duration + 10, 15), rng.uniform(0, 1.2, 15), strict=True)
    ]
    cuts = [(float(t), float(c)) for t, c in zip(rng.uniform(0, duration, 40), rng.uniform(0, 1, 40), strict=True)]
    low = float(rng.uniform(10.0, 100.0))
    settings = [ChapterSettings(), ChapterSettings(min_chapter_s=low, max_chapter_s=low * rng.uniform(2.0, 5.0))][
        int(rng.integers(0, 2))
    ]
    segments = _chapters(
        duration,
        starts[order],
        ends[order],
        vectors[order],
        slide_changes=shown[: int(rng.integers(0, 16))],
        shot_boundaries=cuts[: int(rng.integers(0, 41))],
        settings=settings,
    )
    _assert_tiles(segments, duration)
    _no_sentence_cut(segments, starts, ends, duration)
    min_len, max_len = chapter_lengths(duration, settings)
    lengths = np.array([segment.end_s - segment.start_s for segment in segments])
    assert lengths.max() <= max_len + 1e-6
    if duration >= min_len:
        assert lengths.min() >= min_len - 1e-6
    else:
        assert len(segments) == 1


def test_overlapping_sentences_still_tile():
    rng = np.random.default_rng(42)
    starts = np.sort(rng.uniform(0.0, 500.0, 120))
    ends = starts + rng.uniform(2.0, 15.0, 120)  # speakers talking over each other
    segments = _chapters(520.0, starts, ends, rng.normal(size=(120, 8)).astype(np.float32))
    _assert_tiles(segments, 520.0)


def test_unsorted_sentences_give_the_same_chapters_as_sorted_ones():
    rng = np.random.default_rng(40)
    starts, ends, vectors, truth, duration = _lecture(rng, [40, 40, 40])
    order = rng.permutation(len(starts))
    assert _chapters(duration, starts[order], ends[order], vectors[order]) == _chapters(duration, starts, ends, vectors)


def test_sentences_beyond_the_end_are_clipped():
    rng = np.random.default_rng(41)
    starts, ends, vectors, truth, duration = _lecture(rng, [40, 40, 40])
    cut = float(starts[100])  # the file ends while sentence 100 is said
    segments = _chapters(cut, starts, ends, vectors)
    _assert_tiles(segments, cut)
    assert abs(_boundaries(segments)[0] - truth[0]) <= 10.0


def test_invalid_input_is_a_value_error():
    starts, ends, vectors = np.array([0.0, 5.0]), np.array([4.0, 9.0]), np.eye(2, 4, dtype=np.float32)
    good = dict(sentence_starts=starts, sentence_ends=ends, sentence_vectors=vectors)
    for duration in (0.0, -3.0, float("nan"), float("inf"), None):
        with pytest.raises(ValueError, match="duration_s"):
            find_chapters(duration, **good)
    bad = [
        (dict(sentence_vectors=np.ones((3, 4))), "sentence_vectors"),
        (dict(sentence_vectors=np.ones(4)), "sentence_vectors"),
        (dict(sentence_vectors=np.full((2, 4), np.nan)), "NaN"),
        (dict(sentence_ends=np.array([4.0])), "sentence_ends"),
        (dict(sentence_ends=np.array([4.0, 3.0])), "sentence 1 ends"),
        (dict(sentence_starts=np.array([0.0, np.nan])), "finite"),
        (dict(slide_changes=[(1.0, 0.5, 3.0)]), "slide_changes"),
        (dict(slide_changes=[(np.nan, 0.5)]), "slide_changes"),
        (dict(shot_boundaries=[(3.0, -0.5)]), "negative"),
        (dict(sentence_starts=[], sentence_ends=[], sentence_vectors=np.ones((2, 4))), "no sentences"),
    ]
    for change, message in bad:
        with pytest.raises(ValueError, match=message):
            find_chapters(60.0, **{**good, **change})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(min_chapter_s=60.0, max_chapter_s=60.0), "min_chapter_s < max_chapter_s"),
        (dict(min_chapter_s=-1.0), "min_chapter_s"),
        (dict(max_chapter_s=float("nan")), "max_chapter_s"),
        (dict(block_sentences=0), "block_sentences"),
        (dict(block_sentences=2.5), "block_sentences"),
        (dict(slide_weight=-0.1), "slide_weight"),
        (dict(snap_s=float("inf")), "snap_s"),
        (dict(text_weight=0.0, slide_weight=0.0, shot_weight=0.0, silence_weight=0.0), "positive weight"),
        (dict(threshold=float("nan")), "threshold"),
    ],
)
def test_invalid_settings_are_a_value_error(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(ChapterSettings(), **change)
