"""Chapter titles and summaries (models/summaries.py): sentences, token budgets, the extractive summary on the
real MiniLM encoder, key phrases, slide headings, titles, visual descriptions, and SummaryModel on a tiny
random causal LM through the real from_pretrained/generate path."""

from __future__ import annotations

import numpy as np
import pytest

from media_assets.demo.random_llm import write_random_causal_lm
from media_assets.errors import ModelLoadError
from media_assets.models.summaries import (
    ELLIPSIS,
    MAX_SUMMARY_TOKENS,
    NEAR_DUPLICATE,
    SUMMARY_MODEL_ENV,
    Generated,
    SummaryModel,
    approximate_tokens,
    chapter_title,
    default_summary_model,
    extractive_summary,
    fit_tokens,
    key_phrases,
    slide_heading,
    split_sentences,
    summary_text,
    visual_description,
)
from media_assets.models.text import TextEncoder

# A paragraph about one topic with an aside (index 3) and the same sentence again as screen text in capitals
# (index 7: an uncased model gives it the very vector of index 6).
REEF = [
    "Coral reefs are built by tiny animals called polyps that live in large colonies.",
    "The polyps take calcium from sea water and build hard skeletons of limestone.",
    "Over thousands of years these skeletons pile up into the reefs we see today.",
    "My cousin bought a new red bicycle at the shop yesterday.",
    "Warm water makes the polyps expel the algae that feed them, and the coral turns white.",
    "This bleaching has killed large parts of the Great Barrier Reef since 2016.",
    "Coral reefs are home to a quarter of all the fish species in the ocean.",
    "CORAL REEFS ARE HOME TO A QUARTER OF ALL THE FISH SPECIES IN THE OCEAN.",
]
ASIDE, SPOKEN, ON_SCREEN = 3, 6, 7


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder.load()


@pytest.fixture(scope="module")
def count(encoder):
    tokenizer = encoder.model.tokenizer
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


@pytest.fixture(scope="module")
def reef_vectors(encoder) -> np.ndarray:
    return encoder.encode(REEF)


# -- sentences and tokens --------------------------------------------------------------------------------


def test_split_sentences_keeps_abbreviations_and_numbers_whole():
    text = "Dr. Smith drilled 3.5 km, e.g. past the old well. Was it deep? Yes! See Fig. 3 and J. Doe's notes."
    assert split_sentences(text) == [
        "Dr. Smith drilled 3.5 km, e.g. past the old well.",
        "Was it deep?",
        "Yes!",
        "See Fig. 3 and J. Doe's notes.",
    ]
    # soft abbreviations end a sentence only before a capital; "I." is a word, not an initial
    assert split_sentences("Saws, drills etc. are tools. So did I. Then we moved to the U.S. It was 9 a.m. sharp") == [
        "Saws, drills etc. are tools.",
        "So did I.",
        "Then we moved to the U.S.",
        "It was 9 a.m. sharp",
    ]


def test_split_sentences_splits_lines_and_drops_empty_pieces():
    assert split_sentences('Agenda\n\n  Budget 2.0\r\n...\n - \nWell... we begin. "Done." Next') == [
        "Agenda",
        "Budget 2.0",
        "Well... we begin.",  # an ellipsis before a lower-case word is a pause
        '"Done."',
        "Next",
    ]
    assert split_sentences("") == split_sentences("  \n\t ") == []


def test_approximate_tokens_is_close_to_the_real_word_piece_count(count):
    texts = [*REEF, "um so yeah, we're gonna talk about the quarterly results now, okay?", "electroencephalography"]
    real = np.array([count(t) for t in texts])
    approx = np.array([approximate_tokens(t) for t in texts])
    assert np.all(np.abs(approx - real) <= np.maximum(2, 0.2 * real)), list(zip(real, approx, strict=True))
    assert approx.sum() >= real.sum()  # on the whole a little above: a budget it counts holds for real
    assert approximate_tokens("") == 0


def test_fit_tokens_cuts_at_a_word_boundary_and_says_so(count):
    text = "The drilling rig in the north field, reached a depth of many kilometres today"
    assert fit_tokens(f"  {text} ", 100, count) == text
    cut = fit_tokens(text, 8, count)
    assert cut == "The drilling rig in the north field" + ELLIPSIS  # the "," before the cut is dropped
    assert count(cut) <= 8 and text.startswith(cut[:-1])
    assert fit_tokens(text, 7, count) == "The drilling rig in the north" + ELLIPSIS
    assert fit_tokens("electroencephalography is long", 2, count) == ""  # not even the first word fits
    assert fit_tokens(text, 0) == ""


# -- extractive summary ----------------------------------------------------------------------------------


def test_extractive_summary_takes_central_sentences_in_time_order_within_the_budget(reef_vectors, count):
    centrality = reef_vectors @ (reef_vectors.mean(axis=0) / np.linalg.norm(reef_vectors.mean(axis=0)))
    assert centrality[ASIDE] < 0.5 * centrality.max()  # the aside really is off the topic (measured 0.26 vs 0.78)
    for budget in (20, 40, 60, MAX_SUMMARY_TOKENS):
        chosen = extractive_summary(REEF, reef_vectors, max_tokens=budget, count_tokens=count)
        assert chosen and chosen == sorted(chosen), budget
        assert sum(count(REEF[i]) for i in chosen) <= budget
        assert ASIDE not in chosen
        assert int(np.argmax(centrality)) in chosen  # the first pick is the most central sentence
    # MMR: without diversity the two most central sentences; with it, a second one that makes a new point
    central = extractive_summary(REEF, reef_vectors, max_tokens=35, count_tokens=count, diversity=0.0)
    assert central[0] == 0 and central[1] in (SPOKEN, ON_SCREEN)  # the most central, 0.78 and 0.77 (both)
    diverse = extractive_summary(REEF, reef_vectors, max_tokens=35, count_tokens=count, diversity=0.5)
    assert len(diverse) == 2 and reef_vectors[diverse[0]] @ reef_vectors[diverse[1]] < 0.8 * (
        reef_vectors[central[0]] @ reef_vectors[central[1]]
    )
    # a budget bigger than the chapter: every relevant sentence, the aside still left out
    everything = extractive_summary(REEF, reef_vectors, max_tokens=10_000, count_tokens=count, diversity=0.0)
    assert set(everything) == set(range(len(REEF))) - {ASIDE, ON_SCREEN}


def test_extractive_summary_never_takes_a_near_duplicate(reef_vectors, count):
    assert reef_vectors[SPOKEN] @ reef_vectors[ON_SCREEN] > NEAR_DUPLICATE
    for diversity in (0.0, 0.3, 1.0):
        chosen = extractive_summary(REEF, reef_vectors, max_tokens=10_000, count_tokens=count, diversity=diversity)
        assert not {SPOKEN, ON_SCREEN} <= set(chosen), diversity
        assert {SPOKEN, ON_SCREEN} & set(chosen)  # one of them is said


def test_extractive_summary_weights_prefer_and_exclude(reef_vectors, count):
    # the screen-text copy first, then the speech: equal vectors, so the earlier wins, unless screen text
    # counts less than speech
    pair, vectors = [REEF[ON_SCREEN], REEF[SPOKEN]], reef_vectors[[ON_SCREEN, SPOKEN]]
    assert extractive_summary(pair, vectors, count_tokens=count) == [0]
    assert extractive_summary(pair, vectors, count_tokens=count, weights=[0.5, 1.0]) == [1]
    weights = [1.0] * len(REEF)
    weights[0] = 0.0  # weight 0: never chosen, though the most central
    assert 0 not in extractive_summary(REEF, reef_vectors, max_tokens=10_000, weights=weights)
    assert 0 in extractive_summary(REEF, reef_vectors, max_tokens=10_000)
    with pytest.raises(ValueError, match="weights"):
        extractive_summary(REEF, reef_vectors, weights=[1.0])
    with pytest.raises(ValueError, match="shape"):
        extractive_summary(REEF[:3], reef_vectors)
    assert extractive_summary([], np.zeros((0, 384), np.float32)) == []


def test_a_sentence_longer_than_the_budget_is_the_one_index_to_cut(reef_vectors, count):
    long = " and ".join(s.rstrip(".") for s in REEF[:3]) + "."
    sentences, vectors = [long], reef_vectors[:1]
    assert count(long) > 20
    assert extractive_summary(sentences, vectors, max_tokens=20, count_tokens=count) == [0]  # the signal
    text = summary_text(sentences, [0], max_tokens=20, count_tokens=count)
    assert text.endswith(ELLIPSIS) and count(text) <= 20 and long.startswith(text[:-1])
    # shorter sentences: joined as they are
    chosen = extractive_summary(REEF, reef_vectors, max_tokens=40, count_tokens=count)
    assert summary_text(REEF, chosen, max_tokens=40, count_tokens=count) == " ".join(REEF[i] for i in chosen)


# -- key phrases, headings, titles -------------------------------------------------------------------------

CHAPTERS = [
    [
        "Today the drilling rig in the north field reached its depth.",
        "The drilling rig crew checked the pressure today.",
        "Pressure at the drilling rig was normal, and the north field is calm today.",
    ],
    ["Today the kitchen is busy. A cook cuts onions in the kitchen.", "Soup is ready today, says the cook."],
    ["Questions today about NASA and the budget.", "The budget is tight, said Ana, and NASA agreed."],
]


def test_key_phrases_are_specific_to_the_chapter_and_not_contained_in_each_other():
    drilling = key_phrases(CHAPTERS[0], CHAPTERS)
    assert drilling == ["drilling rig", "north field", "pressure"]
    # "today" is said more often than "pressure" but in every chapter: idf puts it last
    assert key_phrases(CHAPTERS[0], CHAPTERS, k=10).index("today") > drilling.index("pressure")
    alone = key_phrases(CHAPTERS[0], [CHAPTERS[0]], k=10)  # one chapter: tf alone, "today" before "pressure"
    assert alone[:2] == drilling[:2] and alone.index("today") < alone.index("pressure")
    # said twice, "today" still beats "busy" said once (smoothed idf: 1 in every chapter, 1.7 in one of 3)
    assert key_phrases(CHAPTERS[1], CHAPTERS, k=4) == ["kitchen", "cook", "today", "busy"]
    assert key_phrases(CHAPTERS[2], CHAPTERS)[:2] == ["NASA", "budget"]  # an acronym keeps its capitals
    assert "Ana" in key_phrases(CHAPTERS[2], CHAPTERS, k=10)
    assert key_phrases(["um, uh, the and of it"], [["um, uh, the and of it"]]) == []


def _box(left: float, top: float, right: float, bottom: float) -> tuple[float, ...]:
    return (left, top, right, top, right, bottom, left, bottom)


def _body(first_top: float, count: int, height: float = 0.035, step: float = 0.055) -> list[tuple[str, tuple]]:
    return [
        (f"Point number {i}", _box(0.1, first_top + i * step, 0.7, first_top + i * step + height)) for i in range(count)
    ]


def test_slide_heading_is_the_tallest_line_near_the_top():
    lines = [*_body(0.3, 5), ("Quarterly results", _box(0.1, 0.08, 0.6, 0.16)), ("12", _box(0.9, 0.93, 0.95, 0.96))]
    assert slide_heading(lines) == "Quarterly results"
    # a heading on two rows, and a small header line above it
    lines = [
        ("Confidential", _box(0.05, 0.01, 0.2, 0.03)),
        ("How the reef", _box(0.1, 0.06, 0.5, 0.12)),
        ("grows back", _box(0.1, 0.13, 0.45, 0.19)),
        *_body(0.3, 4),
    ]
    assert slide_heading(lines) == "How the reef grows back"
    # the tallest line is a burnt-in subtitle at the bottom: not a heading
    assert slide_heading([*_body(0.1, 3), ("Subtitle text", _box(0.2, 0.85, 0.8, 0.93))]) is None


def test_slide_heading_none_when_nothing_looks_like_one():
    assert slide_heading([]) is None
    assert slide_heading([("www.example.com", _box(0.7, 0.05, 0.95, 0.08))]) is None  # one tiny line
    assert slide_heading([("Thank you", _box(0.3, 0.4, 0.7, 0.5))]) == "Thank you"  # one big line: a title slide
    assert slide_heading(_body(0.1, 6)) is None  # evenly spaced lines of one size
    # one size, but the top line stands apart (a gap of two line heights, where the others have 0.6)
    assert slide_heading([("Agenda", _box(0.1, 0.05, 0.3, 0.085)), *_body(0.16, 4)]) == "Agenda"
    with pytest.raises(ValueError, match="8 numbers"):
        slide_heading([("Bad box", (0.1, 0.2, 0.3, 0.4))])


def test_chapter_title():
    assert chapter_title(None, ["drilling rig", "north field"]) == "Drilling rig, north field"
    assert chapter_title("  quarterly   results: ", ["ignored"]) == "Quarterly results"
    long = "One two three four five six seven eight nine ten"
    assert chapter_title(long, []) == "One two three four five six seven eight" + ELLIPSIS
    assert chapter_title(long, [], max_words=3) == "One two three" + ELLIPSIS
    assert chapter_title(None, ["NASA budget", "drilling rig crew", "pressure", "kitchen"]) == (
        "NASA budget, drilling rig crew, pressure, kitchen"
    )
    assert chapter_title(None, ["drilling rig crew", "north field day", "pressure test series", "kitchen"]) == (
        "Drilling rig crew, north field day, kitchen"  # 8 words at most: the phrase that does not fit is left out
    )
    assert chapter_title(None, []) == chapter_title("   ", []) == ""


def test_visual_description_says_only_what_is_known():
    assert (
        visual_description(
            duration_s=80.2,
            shot_kinds=["static", "dynamic", "static", "static"],
            scene_names=["Beach"],
            character_names=["Ana"],
            faces=2,
        )
        == "1 min 20 s, 4 shots (3 static, 1 moving). Scene: Beach. 2 faces; character: Ana."
    )
    assert visual_description(duration_s=45, shot_kinds=["static", "static"]) == "45 s, 2 static shots."
    assert visual_description(duration_s=3725, shot_kinds=[], scene_names=["Beach", "Kitchen", "Beach"], faces=1) == (
        "1 h 2 min. Scenes: Beach, Kitchen. 1 face."
    )
    names = ["Ana", "Ben", "Cy", "Dee", "Eve", "Fay", "Gus"]
    assert visual_description(duration_s=120, shot_kinds=["dynamic"], character_names=names) == (
        "2 min, 1 moving shot. Characters: Ana, Ben, Cy, Dee, Eve and 2 more."
    )


# -- the abstractive summary with a causal LM ------------------------------------------------------------------

EXTRACT = " ".join(REEF[:3])


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return write_random_causal_lm(tmp_path_factory.mktemp("models") / "tiny-lm")


def test_summary_model_generates_within_the_budget(tiny_lm):
    model = SummaryModel.load(tiny_lm, device="cpu")
    assert SummaryModel.load(str(tiny_lm), device="auto") is model  # cached per model and device
    assert model.model_id == str(tiny_lm) and model.device == "cpu"
    generated = model.summarize(EXTRACT, title="Coral reefs", budget_s=60.0, max_new_tokens=20)
    assert isinstance(generated, Generated) and not generated.over_budget
    assert 1 <= generated.tokens <= 20 and 0 < generated.elapsed_s < 60.0
    assert generated.text and generated.text == generated.text.strip()
    assert "summarise" not in generated.text.lower()[:20] and "<|" not in generated.text  # no prompt, no specials
    again = model.summarize(EXTRACT, title="Coral reefs", budget_s=60.0, max_new_tokens=20)
    assert (again.text, again.tokens) == (generated.text, generated.tokens)  # greedy: the same text every time


def test_summary_model_reports_a_spent_budget(tiny_lm):
    generated = SummaryModel.load(tiny_lm, device="cpu").summarize(EXTRACT, budget_s=1e-4)
    assert generated.over_budget and generated.elapsed_s >= 1e-4
    assert generated.tokens < MAX_SUMMARY_TOKENS  # stopped by the clock, not by the length


def test_summary_model_without_chat_template_and_with_a_long_extract(tmp_path):
    model = SummaryModel.load(write_random_causal_lm(tmp_path / "plain", chat_template=False), device="cpu")
    assert not model.tokenizer.chat_template
    generated = model.summarize(EXTRACT * 60, max_new_tokens=30)  # ≈ 2,500 tokens into a 512-token context
    assert not generated.over_budget and 1 <= generated.tokens <= 30 and generated.text


def test_summary_model_missing_folder_is_a_model_load_error(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelLoadError, match="no-such-model") as raised:
        SummaryModel.load(missing, device="cpu")
    assert "there is no folder" in str(raised.value) and SUMMARY_MODEL_ENV in str(raised.value)
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    with pytest.raises(ModelLoadError, match="not-a-model"):  # a folder without a model: the reason, no hint
        SummaryModel.load(empty, device="cpu")


def test_default_summary_model_is_none_when_unset_or_empty(monkeypatch):
    monkeypatch.delenv(SUMMARY_MODEL_ENV, raising=False)
    assert default_summary_model() is None
    monkeypatch.setenv(SUMMARY_MODEL_ENV, "  ")
    assert default_summary_model() is None
    monkeypatch.setenv(SUMMARY_MODEL_ENV, " google/gemma-2b-it ")
    assert default_summary_model() == "google/gemma-2b-it"
