"""Opt-in int8 text encoding: close to float32, used only when asked, validated, passed through SearchClient."""

from __future__ import annotations

import numpy as np
import pytest

from media_assets import SearchClient
from media_assets.demo.random_clip import write_random_clip
from media_assets.demo.synthetic_library import write_synthetic_library
from media_assets.models.clip import (
    TEXT_QUANTIZATION_ENV,
    ClipEncoder,
    check_text_quantization,
    default_text_quantization,
)
from media_assets.warehouse import Warehouse

WORDS = "a the cat dog on sofa beach night red car city people running snow mountain kitchen".split()


def _texts(count: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(1, 8))) for _ in range(count)]


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """A tiny random CLIP of its own (so the cached encoders of other tests are not touched)."""
    return write_random_clip(tmp_path_factory.mktemp("models") / "tiny-clip-text", size="tiny")


@pytest.fixture(scope="module")
def fp32(clip_dir):
    return ClipEncoder.load(str(clip_dir), device="cpu")


@pytest.fixture(scope="module")
def int8(clip_dir, fp32):
    return ClipEncoder.load(str(clip_dir), device="cpu", text_quantization="int8")


def test_int8_text_vectors_are_unit_vectors_close_to_float32(fp32, int8):
    texts = _texts(300)
    reference, quantized = fp32.encode_text(texts), int8.encode_text(texts)
    assert quantized.dtype == np.float32 and quantized.shape == reference.shape == (300, 32)
    np.testing.assert_allclose(np.linalg.norm(quantized, axis=1), 1.0, atol=1e-5)
    # the texts really differ (otherwise agreement would say nothing) ...
    pairwise = reference @ reference.T
    assert np.median(pairwise[np.triu_indices(len(texts), 1)]) < 0.8
    # ... and int8 lands next to float32 for every one. Measured on this model: min 0.991, median 0.999.
    cosines = np.sum(reference * quantized, axis=1)
    assert cosines.min() > 0.98 and np.median(cosines) > 0.995
    # the nearest other text is mostly the same one (measured 0.88; many of these short texts nearly tie)
    np.fill_diagonal(pairwise, -2)
    cross = quantized @ reference.T
    np.fill_diagonal(cross, -2)
    assert np.mean(pairwise.argmax(axis=1) == cross.argmax(axis=1)) > 0.8


def test_int8_is_used_only_when_asked(clip_dir, fp32, int8):
    import torch

    assert fp32.text_quantization == "none" and int8.text_quantization == "int8"
    for default in (
        ClipEncoder.load(str(clip_dir), device="cpu", text_quantization=None),
        ClipEncoder.load(str(clip_dir), device="cpu", text_quantization="none"),
    ):
        assert default is fp32
    assert ClipEncoder.load(str(clip_dir), device="cpu", text_quantization="INT8") is int8  # loaded once
    # float32: the model's own text path, unchanged
    assert all(type(m) is torch.nn.Linear for m in fp32.model.text_model.modules() if isinstance(m, torch.nn.Linear))
    tokens = fp32.processor.tokenizer(["a cat on the sofa"], return_tensors="pt")
    with torch.inference_mode():
        own = torch.nn.functional.normalize(fp32.model.get_text_features(**tokens).pooler_output, dim=-1).numpy()
    np.testing.assert_array_equal(fp32.encode_text(["a cat on the sofa"]), own)
    # int8: quantised linear layers in the text tower only; the numbers differ a little from float32
    quantized_layers = [m for m in int8._text_model.text_model.modules() if "quantized" in type(m).__module__]
    assert quantized_layers and not any("quantized" in type(m).__module__ for m in int8.model.modules())
    assert not np.array_equal(int8.encode_text(["a cat on the sofa"]), own)
    # the image path is the float32 encoder's: same model, same lock, identical vectors
    assert int8.model is fp32.model and int8._lock is fp32._lock
    image = np.random.default_rng(0).integers(0, 256, (80, 120, 3), dtype=np.uint8)
    np.testing.assert_array_equal(int8.encode_images([image]), fp32.encode_images([image]))


def test_the_option_is_validated(clip_dir, monkeypatch):
    assert [check_text_quantization(v) for v in (None, "", "none", "fp32", "int8", " Int8 ")] == ["none"] * 4 + [
        "int8"
    ] * 2
    for bad in ("int4", "fp16", 8, True):
        with pytest.raises(ValueError, match=r"text_quantization must be one of none, int8, got"):
            ClipEncoder.load(str(clip_dir), device="cpu", text_quantization=bad)
    monkeypatch.delenv(TEXT_QUANTIZATION_ENV, raising=False)
    assert default_text_quantization() == "none"
    monkeypatch.setenv(TEXT_QUANTIZATION_ENV, "int8")
    assert default_text_quantization() == "int8"
    monkeypatch.setenv(TEXT_QUANTIZATION_ENV, "int7")
    with pytest.raises(ValueError, match=r"\$MEDIA_ASSETS_TEXT_QUANTIZATION must be one of none, int8, got 'int7'"):
        default_text_quantization()


def test_cuda_keeps_its_own_precision(clip_dir, monkeypatch):
    """No GPU here: a stand-in encoder under the CUDA key shows the option is ignored there."""
    import media_assets.models.clip as encoders

    stand_in = object.__new__(ClipEncoder)
    monkeypatch.setattr(encoders, "resolve_device", lambda device: "cuda")
    monkeypatch.setitem(ClipEncoder._cache, (str(clip_dir), "cuda"), stand_in)
    assert ClipEncoder.load(str(clip_dir), device="cuda", text_quantization="int8") is stand_in
    assert (str(clip_dir), "cuda", "int8") not in ClipEncoder._cache


@pytest.fixture(scope="module")
def library(tmp_path_factory, clip_dir) -> Warehouse:
    warehouse = Warehouse.at(tmp_path_factory.mktemp("text-quantization") / "warehouse").ensure()
    rng = np.random.default_rng(0)
    write_synthetic_library(
        warehouse, {f"clip{i}.mp4": rng.standard_normal((40, 32)) for i in range(5)}, model_id=str(clip_dir)
    )
    return warehouse


def test_search_client_passes_the_option_through(library, clip_dir, fp32, int8, monkeypatch):
    monkeypatch.delenv(TEXT_QUANTIZATION_ENV, raising=False)
    assert SearchClient(library).encoder is fp32
    assert SearchClient(library, text_quantization="int8").encoder is int8
    monkeypatch.setenv(TEXT_QUANTIZATION_ENV, "int8")  # what `media-assets serve` and the CLI pick up
    assert SearchClient(library).encoder is int8
    assert SearchClient(library, text_quantization="none").encoder is fp32  # the argument wins
    monkeypatch.setenv(TEXT_QUANTIZATION_ENV, "bf16")
    with pytest.raises(ValueError, match="MEDIA_ASSETS_TEXT_QUANTIZATION"):
        SearchClient(library)
    with pytest.raises(ValueError, match="text_quantization must be one of"):
        SearchClient(library, text_quantization="yes")
    monkeypatch.delenv(TEXT_QUANTIZATION_ENV)
    # the quantised client searches like the float32 one
    exact, quantized = SearchClient(library), SearchClient(library, text_quantization="int8")
    overlaps = []
    for text in _texts(20, seed=1):
        a = {hit.frame_id for hit in exact.search_text(text, k=10)}
        b = {hit.frame_id for hit in quantized.search_text(text, k=10)}
        overlaps.append(len(a & b) / 10)
    assert np.mean(overlaps) > 0.8
