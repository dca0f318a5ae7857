"""The CLIP encoder on a tiny random checkpoint: the real from_pretrained path, shapes, norms, batching."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from mediagen import photo
from PIL import Image

from media_assets.errors import ModelLoadError
from media_assets.models.clip import ClipEncoder, ImagePreprocessing, resolve_device


@pytest.fixture(scope="module")
def encoder(tiny_clip):
    return ClipEncoder.load(str(tiny_clip), device="auto")


def test_loads_once_per_process_on_the_cpu(encoder, tiny_clip):
    assert encoder.device == "cpu" == resolve_device("auto")
    assert ClipEncoder.load(str(tiny_clip), device="cpu") is encoder
    assert encoder.model_id == str(tiny_clip) and encoder.dim == 32


def test_image_vectors_are_normalised_float32_and_batch_independent(encoder):
    images = [photo(name, (200, 120)) for name in ("astronaut", "chelsea", "coffee", "rocket")]
    together = encoder.encode_images(images, batch_size=4)
    one_by_one = np.concatenate([encoder.encode_images([im]) for im in images])
    assert together.dtype == np.float32 and together.shape == (4, 32)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)


def test_preprocessing_matches_the_checkpoint_processor(encoder):
    """OpenCV preprocessing lands close to transformers' own image processor for the same checkpoint."""
    image = photo("astronaut", (300, 200))
    ours = encoder.preprocess(image)
    theirs = encoder.processor.image_processor(images=Image.fromarray(image[..., ::-1].copy()), return_tensors="np")[
        "pixel_values"
    ][0]
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).mean() < 0.06  # resampling filters differ slightly; values span about ±2


def test_image_files_are_encoded_with_a_background_loader(encoder, tmp_path):
    import cv2

    paths = []
    for i, name in enumerate(["astronaut", "chelsea", "coffee"] * 3):
        path = tmp_path / f"{i}.jpg"
        cv2.imwrite(str(path), photo(name))
        paths.append(path)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"nope")
    progress = []
    vectors, unreadable = encoder.encode_image_files(
        paths[:4] + [broken] + paths[4:], batch_size=2, progress=lambda d, t: progress.append(d)
    )
    assert unreadable == [4]
    assert vectors.shape == (9, 32)
    np.testing.assert_allclose(vectors, encoder.encode_images([cv2.imread(str(p)) for p in paths]), atol=1e-5)
    assert progress[-1] == 10


def test_text_vectors_and_truncation_warning(encoder, caplog):
    vectors = encoder.encode_text(["the cat", "a dog on the sofa"])
    assert vectors.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    with caplog.at_level(logging.WARNING):
        assert encoder.encode_text(["word " * 200]).shape == (1, 32)
    assert "truncated" in caplog.text
    with pytest.raises(ValueError, match="non-empty"):
        encoder.encode_text(["   "])


def test_a_missing_model_gives_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="MEDIA_ASSETS_CLIP_MODEL"):
        ClipEncoder.load(str(tmp_path / "no-such-model"), device="cpu")


def test_preprocessing_handles_portrait_and_tiny_images(encoder):
    prep: ImagePreprocessing = encoder.preprocess
    for shape in [(500, 100, 3), (10, 12, 3), (64, 64, 3)]:
        assert prep(np.zeros(shape, np.uint8)).shape == (3, 64, 64)
