"""On-screen text: the OCR wrapper on rendered slides and real photographs, and the screen-text stage on
small warehouses written by hand (frames, keyframes, shot events, JPEG thumbnails), offline on the CPU."""

from __future__ import annotations

from datetime import UTC, datetime

import cv2
import numpy as np
import pytest
from mediagen import photo, render_slide

from media_assets.errors import MissingFramesError
from media_assets.ids import frame_id_for, media_id_for, shot_id_for
from media_assets.media.signals import DUPLICATE_MAX_HASH_DISTANCE, grey, hash_distance, phash
from media_assets.models.ocr import TextLine, TextReader, TextReaderSettings
from media_assets.stages.screen_text import ScreenTextSettings, normalise, read_screen_text
from media_assets.store import catalog

TITLE = "Quarterly results 2024"
BULLETS = ["Revenue grew 12% year over year", "Churn fell to 3.1%", "Hiring: 14 engineers in Berlin"]
OTHER_BULLETS = ["Margins held at 41%", "Two new offices opened", "Questions welcome"]


@pytest.fixture(scope="module")
def reader() -> TextReader:
    return TextReader.load()


def levenshtein(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        diagonal, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (ca != cb))
    return row[-1]


def character_error_rate(lines: list[str], truth: list[str]) -> float:
    """Edits per reference character, over the lines joined; leading bullet glyphs are not text."""
    got = "\n".join(line.lstrip("•·*- ") for line in lines)
    want = "\n".join(truth)
    return levenshtein(got, want) / len(want)


def noisy(image: np.ndarray, seed: int, amplitude: int = 2) -> np.ndarray:
    """The same picture as a camera or a re-encode gives it again: a little noise, JPEG."""
    rng = np.random.default_rng(seed)
    image = np.clip(image.astype(np.int16) + rng.integers(-amplitude, amplitude + 1, image.shape), 0, 255)
    return cv2.imdecode(cv2.imencode(".jpg", image.astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 85])[1], 1)


# -- the reader -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dark", [False, True])
def test_reads_a_rendered_slide(reader, dark):
    lines = reader.read(render_slide(TITLE, BULLETS, dark=dark))
    texts = [line.text for line in lines]
    assert character_error_rate(texts, [TITLE, *BULLETS]) <= 0.1, texts
    assert texts[0] == TITLE  # reading order: the title first
    assert all(line.score >= reader.settings.min_score for line in lines)
    title = lines[0]
    assert len(title.points) == 4 and len(title.box) == 8
    assert all(0.0 <= v <= 1.0 for v in title.box)
    xs, ys = title.box[0::2], title.box[1::2]
    assert max(ys) < 0.25 and min(xs) < 0.1  # the title sits top left
    height, width = 288, 512
    assert title.points[2][0] == pytest.approx(title.box[4] * width) and title.points[2][1] == pytest.approx(
        title.box[5] * height
    )


def test_small_text_on_a_1080p_slide(reader):
    """16-px bullets on a 1920x1080 slide are about 10 px on the 512-px thumbnail."""
    slide = render_slide(TITLE, BULLETS, size=(1920, 1080), title_px=32, bullet_px=16)
    texts = [line.text for line in reader.read(slide)]
    assert character_error_rate(texts, [TITLE, *BULLETS]) <= 0.1, texts


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "rocket", "camera", "coins"])
def test_photographs_give_no_junk_lines(reader, name):
    import skimage.data

    rgb = getattr(skimage.data, name)()
    rgb = np.stack([rgb] * 3, axis=-1) if rgb.ndim == 2 else rgb[..., :3]
    height, width = rgb.shape[:2]
    scale = 512 / max(height, width)
    big = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), (round(width * scale), round(height * scale)))
    for image in (big, photo(name)):
        assert reader.read(image) == [], name


def test_reader_is_loaded_once_and_names_its_models(reader):
    assert TextReader.load(TextReaderSettings()) is reader
    assert TextReader.load(TextReaderSettings(device="auto")).device in ("cpu", "cuda")
    assert reader.device == "cpu"
    assert reader.model_id.startswith("rapidocr:") and "_det_" in reader.model_id and "_rec_" in reader.model_id
    assert reader.read(np.full((90, 160, 3), 255, np.uint8)) == []
    with pytest.raises(ValueError, match="BGR uint8"):
        reader.read(np.zeros((90, 160), np.uint8))


@pytest.mark.parametrize(
    "bad",
    [{"engine": "nope"}, {"device": "tpu"}, {"min_score": 1.5}, {"min_chars": -1}, {"det_max_side": 10}],
)
def test_reader_settings_are_validated(bad):
    with pytest.raises(ValueError):
        TextReaderSettings(**bad)


def test_stage_settings_are_validated():
    with pytest.raises(ValueError, match="same_text_similarity"):
        ScreenTextSettings(same_text_similarity=0.0)
    with pytest.raises(ValueError, match="same_image_max_pixel_diff"):
        ScreenTextSettings(same_image_max_pixel_diff=300)


# -- a warehouse written by hand --------------------------------------------------------------------------


def write_frames(warehouse, key: str, images: list[np.ndarray], *, step_s: float, kind: str = "video") -> int:
    """`media` and `frames` rows and JPEG thumbnails as the frames stage writes them: one sampled frame
    per image, `step_s` apart; a frame within 4 hash bits of the last kept one is a duplicate."""
    media_id = media_id_for(key)
    folder = warehouse.root / "frames" / str(media_id)
    folder.mkdir(parents=True, exist_ok=True)
    rows, kept = [], None
    for seq, image in enumerate(images):
        relative = f"frames/{media_id}/{seq:06d}.jpg"
        cv2.imwrite(str(warehouse.root / relative), image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        frame_hash = phash(grey(image))
        duplicate = kept is not None and hash_distance(frame_hash, kept[1]) <= DUPLICATE_MAX_HASH_DISTANCE
        if not duplicate:
            kept = (frame_id_for(media_id, seq), frame_hash)
        rows.append(
            {
                "frame_id": frame_id_for(media_id, seq),
                "media_id": media_id,
                "seq": seq,
                "frame_index": seq,
                "timestamp_s": seq * step_s,
                "width": image.shape[1],
                "height": image.shape[0],
                "thumbnail_path": relative,
                "phash": frame_hash,
                "sharpness": 100.0,
                "change_score": 0.0,
                "pixel_change": 0.0,
                "is_duplicate": duplicate,
                "duplicate_of": kept[0] if duplicate else None,
                "run_id": "test",
            }
        )
    catalog.replace_partition(warehouse, "frames", media_id, rows)
    media_row = {
        "media_id": media_id,
        "partition_key": key,
        "path": str(warehouse.media_root / key),
        "kind": kind,
        "width": images[0].shape[1] if images else 0,
        "height": images[0].shape[0] if images else 0,
        "duration_s": len(images) * step_s if kind == "video" else 0.0,
        "frames_sampled": len(images),
        "run_id": "test",
        "ingested_at": datetime.now(UTC),
    }
    catalog.replace_partition(warehouse, "media", media_id, [media_row])
    return media_id


def write_shots(warehouse, media_id: int, shots: list[tuple[int, int, list[int]]], events: list[int], step_s: float):
    """`shots`, `keyframes` and `shot_events` rows: shots as (start_seq, end_seq, keyframe seqs), events as
    the seq of the first frame showing the new content."""
    frames = catalog.read_partition(warehouse, "frames", media_id).sort_by("seq").to_pylist()
    end_of_file = len(frames) * step_s
    shot_rows, keyframe_rows, event_rows = [], [], []
    for index, (first, last, keyframe_seqs) in enumerate(shots):
        shot_id = shot_id_for(media_id, index)
        start_s = frames[first]["timestamp_s"]
        end_s = frames[last + 1]["timestamp_s"] if last + 1 < len(frames) else end_of_file
        own_events = [seq for seq in events if first <= seq <= last]
        shot_rows.append(
            {
                "shot_id": shot_id,
                "media_id": media_id,
                "shot_index": index,
                "start_s": start_s,
                "end_s": end_s,
                "duration_s": end_s - start_s,
                "start_seq": first,
                "end_seq": last,
                "start_frame_id": frames[first]["frame_id"],
                "end_frame_id": frames[last]["frame_id"],
                "transition": "start" if index == 0 else "cut",
                "boundary_confidence": 1.0,
                "kind": "static" if len(keyframe_seqs) == 1 else "dynamic",
                "motion": 0.0,
                "keyframe_count": len(keyframe_seqs),
                "event_count": len(own_events),
                "has_vector": False,
                "run_id": "test",
            }
        )
        count = len(keyframe_seqs)
        roles = ["median"] if count == 1 else ["start", *["middle"] * (count - 2), "end"]
        for seq, role in zip(keyframe_seqs, roles, strict=True):
            keyframe_rows.append(
                {
                    "frame_id": frames[seq]["frame_id"],
                    "shot_id": shot_id,
                    "media_id": media_id,
                    "role": role,
                    "timestamp_s": frames[seq]["timestamp_s"],
                    "thumbnail_path": frames[seq]["thumbnail_path"],
                }
            )
        for seq in own_events:
            event_rows.append(
                {
                    "frame_id": frames[seq]["frame_id"],
                    "shot_id": shot_id,
                    "media_id": media_id,
                    "time_s": frames[seq]["timestamp_s"],
                    "score": 0.8,
                }
            )
    catalog.replace_partition(warehouse, "shots", media_id, shot_rows)
    catalog.replace_partition(warehouse, "keyframes", media_id, keyframe_rows)
    catalog.replace_partition(warehouse, "shot_events", media_id, event_rows)


def screen_text(warehouse, media_id: int) -> list[dict]:
    return catalog.read_partition(warehouse, "screen_text", media_id).to_pylist()


def spans(rows: list[dict]) -> dict[str, tuple[float, float]]:
    return {row["text"].lstrip("•· "): (row["start_s"], row["end_s"]) for row in rows}


def test_a_slide_held_for_three_minutes_is_one_row_per_line(warehouse, reader):
    """One shot of 3 minutes sampled every 10 s, its three keyframes (start, middle, end) showing the same
    slide: the first is OCR'd, the other two are the same image and are not."""
    slide = render_slide(TITLE, BULLETS)
    media_id = write_frames(warehouse, "talk.mp4", [noisy(slide, seed) for seed in range(18)], step_s=10.0)
    write_shots(warehouse, media_id, [(0, 17, [0, 9, 17])], [], step_s=10.0)
    calls = []
    result = read_screen_text(warehouse, media_id, reader=reader, run_id="r1", progress=lambda *a: calls.append(a))

    assert (result.frames_chosen, result.frames_read, result.frames_skipped_same_image) == (3, 1, 2)
    assert calls == [(1, 3), (2, 3), (3, 3)]
    rows = screen_text(warehouse, media_id)
    assert len(rows) == result.lines == result.distinct_texts == 4
    assert character_error_rate([row["text"] for row in rows], [TITLE, *BULLETS]) <= 0.1
    for n, row in enumerate(rows):
        assert row["text_id"] == (media_id << 20 | n) and row["media_id"] == media_id
        assert (row["start_s"], row["end_s"]) == (0.0, 180.0)
        assert row["frame_id"] == frame_id_for(media_id, 0)
        assert len(row["box"]) == 8 and 0 < row["score"] <= 1
        assert (row["model_id"], row["run_id"]) == (reader.model_id, "r1")
    assert TITLE in result.excerpt
    assert result.samples[0][0] == warehouse.root / f"frames/{media_id}/000000.jpg"
    assert result.samples[0][1][0] == rows[0]["text"]


def test_the_same_text_on_a_changed_picture_is_read_again_and_merged(warehouse, reader):
    """A different picture beside the same text is OCR'd again (the hash moves), yet the lines stay one
    row each: the text is what is compared."""
    slide = render_slide(TITLE, BULLETS)
    frames = []
    for seed, name in enumerate(["astronaut", "coffee", "chelsea"]):
        picture = slide.copy()
        picture[170:270, 340:490] = photo(name, (150, 100))
        frames += [noisy(picture, seed)] * 6
    media_id = write_frames(warehouse, "talk2.mp4", frames, step_s=10.0)
    write_shots(warehouse, media_id, [(0, 17, [0, 9, 17])], [], step_s=10.0)
    result = read_screen_text(warehouse, media_id, reader=reader)
    assert (result.frames_read, result.frames_skipped_same_image) == (3, 0)
    assert {span for span in spans(screen_text(warehouse, media_id)).values()} == {(0.0, 180.0)}


def test_a_slide_change_starts_new_rows(warehouse, reader):
    """Shot 1 (0-120 s) shows slide A, then slide B from 60 s (a shot event at seq 6); its one keyframe
    (seq 8) is on slide B. Shot 2 (120-150 s) is a photograph. Slide A is read from its own stretch's middle
    frame, slide B from the frame after the event; the keyframe shows slide B again and is skipped."""
    a, b = render_slide(TITLE, BULLETS), render_slide(TITLE, OTHER_BULLETS)
    picture = cv2.resize(photo("astronaut", (320, 180)), (512, 288))
    images = [noisy(a, i) for i in range(6)] + [noisy(b, i) for i in range(6, 12)] + [picture] * 3
    media_id = write_frames(warehouse, "deck.mp4", images, step_s=10.0)
    write_shots(warehouse, media_id, [(0, 11, [8]), (12, 14, [13])], [6], step_s=10.0)
    result = read_screen_text(warehouse, media_id, reader=reader)

    assert result.frames_chosen == 4  # seq 2 (slide A), 7 (after the event), 8 (the keyframe), 13 (the photo)
    assert (result.frames_read, result.frames_skipped_same_image) == (3, 1)
    rows = screen_text(warehouse, media_id)
    got = spans(rows)
    assert got[TITLE] == (0.0, 120.0)  # the title stays on screen across the change: one row
    for line in BULLETS:
        assert got[line] == (0.0, 60.0), got
    for line in OTHER_BULLETS:
        assert got[line] == (60.0, 120.0), got
    assert [row["start_s"] for row in rows] == sorted(row["start_s"] for row in rows)
    assert {row["frame_id"] for row in rows} == {frame_id_for(media_id, 2), frame_id_for(media_id, 7)}


def test_a_slide_back_after_a_cutaway_is_not_read_again(warehouse, reader):
    """Slide, speaker, the same slide again (three shots): the slide is OCR'd once, the speaker once; the
    slide's lines are two rows each, one per stretch on screen."""
    slide, speaker = render_slide(TITLE, BULLETS), cv2.resize(photo("astronaut"), (512, 288))
    media_id = write_frames(
        warehouse, "cutaway.mp4", [noisy(slide, 0)] * 3 + [speaker] * 3 + [noisy(slide, 1)] * 3, step_s=10.0
    )
    write_shots(warehouse, media_id, [(0, 2, [1]), (3, 5, [4]), (6, 8, [7])], [], step_s=10.0)
    result = read_screen_text(warehouse, media_id, reader=reader)
    assert (result.frames_read, result.frames_skipped_same_image) == (2, 1)
    rows = screen_text(warehouse, media_id)
    assert sorted({(row["start_s"], row["end_s"]) for row in rows}) == [(0.0, 30.0), (60.0, 90.0)]
    assert len(rows) == 8 and result.distinct_texts == 4


def test_a_small_edit_with_the_same_hash_is_read(warehouse, reader):
    """'fell' → 'rose' and 12% → 13% leave the perceptual hash (nearly) where it was; the pixel check sees
    the edits, so the frame is OCR'd and the edited lines get rows of their own."""
    edited = ["Revenue grew 13% year over year", "Churn rose to 3.1%", BULLETS[2]]
    before, after = render_slide(TITLE, BULLETS), render_slide(TITLE, edited)
    assert hash_distance(phash(grey(before)), phash(grey(after))) <= DUPLICATE_MAX_HASH_DISTANCE
    media_id = write_frames(warehouse, "edit.mp4", [before] * 3 + [after] * 3, step_s=10.0)
    write_shots(warehouse, media_id, [(0, 5, [1, 4])], [], step_s=10.0)
    result = read_screen_text(warehouse, media_id, reader=reader)
    assert (result.frames_read, result.frames_skipped_same_image) == (2, 0)
    got = spans(screen_text(warehouse, media_id))
    assert got[TITLE] == got[BULLETS[2]] == (0.0, 60.0)
    for old, new in zip(BULLETS[:2], edited[:2], strict=True):
        assert got[old] == (0.0, 40.0) and got[new] == (40.0, 60.0), got


def test_rerunning_replaces_exactly_the_partitions_rows(warehouse, reader):
    one = write_frames(warehouse, "one.mp4", [render_slide(TITLE, BULLETS)] * 2, step_s=5.0)
    two = write_frames(warehouse, "two.mp4", [render_slide("Other talk", OTHER_BULLETS)] * 2, step_s=5.0)
    write_shots(warehouse, one, [(0, 1, [0])], [], step_s=5.0)
    write_shots(warehouse, two, [(0, 1, [0])], [], step_s=5.0)
    read_screen_text(warehouse, one, reader=reader, run_id="first")
    read_screen_text(warehouse, two, reader=reader, run_id="first")
    before_two = screen_text(warehouse, two)

    write_frames(warehouse, "one.mp4", [render_slide("Summary", ["Thank you"])] * 2, step_s=5.0)
    result = read_screen_text(warehouse, one, reader=reader, run_id="second")
    rows = screen_text(warehouse, one)
    assert [normalise(row["text"]) for row in rows] == ["summary", "thankyou"]
    assert result.lines == len(rows) == 2 and {row["run_id"] for row in rows} == {"second"}
    assert [row["text_id"] for row in rows] == [one << 20, one << 20 | 1]
    assert screen_text(warehouse, two) == before_two


def test_without_keyframes_the_kept_frames_are_read(warehouse, reader):
    """No shots materialized: the kept frames are read (a duplicate is not), each standing for the time to
    the next one, the last to the end of the file."""
    a, b = render_slide(TITLE, BULLETS), render_slide("Summary", OTHER_BULLETS)
    media_id = write_frames(warehouse, "raw.mp4", [a, noisy(a, 1), b], step_s=2.0)
    frames = catalog.read_partition(warehouse, "frames", media_id).to_pylist()
    assert [f["is_duplicate"] for f in frames] == [False, True, False]
    result = read_screen_text(warehouse, media_id, reader=reader)
    assert (result.frames_chosen, result.frames_read) == (2, 2)
    got = spans(screen_text(warehouse, media_id))
    assert got[TITLE] == (0.0, 4.0) and got["Summary"] == (4.0, 6.0)


def test_a_photo_is_read_once(warehouse, reader):
    media_id = write_frames(
        warehouse, "poster.png", [render_slide("Open day", ["Saturday 10:00"])], step_s=1.0, kind="image"
    )
    write_shots(warehouse, media_id, [(0, 0, [0])], [], step_s=0.0)
    result = read_screen_text(warehouse, media_id, reader=reader)
    rows = screen_text(warehouse, media_id)
    assert result.frames_read == 1 and [normalise(row["text"]) for row in rows] == ["openday", "saturday1000"]
    assert {(row["start_s"], row["end_s"]) for row in rows} == {(0.0, 0.0)}


def test_no_text_no_frames_and_missing_frames(warehouse, reader):
    quiet = write_frames(warehouse, "beach.mp4", [photo("coffee", (512, 288))] * 3, step_s=1.0)
    write_shots(warehouse, quiet, [(0, 2, [1])], [], step_s=1.0)
    result = read_screen_text(warehouse, quiet, reader=reader)
    assert (result.lines, result.frames_read, result.excerpt, result.samples) == (0, 1, "", [])
    assert screen_text(warehouse, quiet) == []

    sound = media_id_for("song.mp3")
    catalog.replace_partition(warehouse, "frames", sound, catalog.FRAMES_SCHEMA.empty_table())
    result = read_screen_text(warehouse, sound, reader=reader)
    assert (result.frames_chosen, result.lines) == (0, 0) and screen_text(warehouse, sound) == []

    with pytest.raises(MissingFramesError, match="materialize its frames"):
        read_screen_text(warehouse, media_id_for("never-ingested.mp4"), reader=reader)


def test_an_unreadable_thumbnail_is_skipped_and_counted(warehouse, reader):
    slide = render_slide(TITLE, BULLETS)
    media_id = write_frames(warehouse, "broken.mp4", [slide] * 3, step_s=10.0)
    write_shots(warehouse, media_id, [(0, 2, [0, 1, 2])], [], step_s=10.0)
    (warehouse.root / f"frames/{media_id}/000000.jpg").write_bytes(b"not a jpeg")
    result = read_screen_text(warehouse, media_id, reader=reader)
    assert (result.unreadable_frames, result.frames_read, result.frames_skipped_same_image) == (1, 1, 1)
    assert {span for span in spans(screen_text(warehouse, media_id)).values()} == {(10.0, 30.0)}


class ScriptedReader(TextReader):
    """A reader that returns given texts per frame (by the image's mean grey level), to pin the merge rule."""

    def __init__(self, script: dict[int, list[str]]):
        super().__init__(TextReaderSettings(), model_id="scripted", device="cpu")
        self.script = script

    def read_lines(self, bgr):
        texts = self.script[int(round(bgr.mean()))]
        return [TextLine.from_points(t, [(0, 0), (10, 0), (10, 5), (0, 5)], 0.95, 20, 10) for t in texts]


def test_near_identical_readings_continue_a_row(warehouse):
    """OCR slips (a letter, case, punctuation) do not split a row; a different line does."""
    levels = [40, 80, 120, 160]
    script = {
        40: ["Revenue grew 12% year over year", "Churn fell"],
        80: ["Revenue grew 12% year over yaer", "churn fell."],
        120: ["revenue grew 12 % year over year", "Hiring in Berlin"],
        160: ["Completely different", "Hiring in Berlin", "Revenue grew 13% year over year"],
    }
    images = [np.full((90, 160, 3), level, np.uint8) for level in levels]
    media_id = write_frames(warehouse, "script.mp4", images, step_s=1.0)
    write_shots(warehouse, media_id, [(0, 3, [0, 1, 2, 3])], [], step_s=1.0)
    result = read_screen_text(warehouse, media_id, reader=ScriptedReader(script))
    rows = screen_text(warehouse, media_id)
    assert [(row["text"], row["start_s"], row["end_s"]) for row in rows] == [
        ("Revenue grew 12% year over year", 0.0, 3.0),
        ("Churn fell", 0.0, 2.0),
        ("Hiring in Berlin", 2.0, 4.0),
        ("Completely different", 3.0, 4.0),
        ("Revenue grew 13% year over year", 3.0, 4.0),  # other digits: another line, however similar
    ]
    assert result.model_id == "scripted" and result.distinct_texts == 5
    strict = read_screen_text(
        warehouse, media_id, ScreenTextSettings(same_text_similarity=1.0), reader=ScriptedReader(script)
    )
    assert strict.lines == 7  # the slip in 'yaer' is a new row at 1.0; case and punctuation never are
