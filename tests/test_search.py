"""The search client: identity queries, similar frames, conversions, and clear errors for bad queries."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
from mediagen import photo, shots_video

from media_assets import SearchClient, SearchError
from media_assets.media.discovery import scan_media
from media_assets.models.clip import ClipEncoder
from media_assets.search.client import cosine_to_similarity
from media_assets.stages.frame_embeddings import embed_frames
from media_assets.stages.frames import extract_frames
from media_assets.warehouse import Warehouse


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_clip) -> Warehouse:
    warehouse = Warehouse.at(tmp_path_factory.mktemp("search") / "warehouse").ensure()
    shots_video(warehouse.media_root / "clips" / "a.mp4", ["astronaut", "chelsea", "coffee"], seconds_each=2.0)
    shots_video(warehouse.media_root / "b.mp4", ["rocket", "astronaut"], seconds_each=2.0)
    cv2.imwrite(str(warehouse.media_root / "cat.png"), photo("chelsea", (400, 300)))
    encoder = ClipEncoder.load(str(tiny_clip), device="cpu")
    for media_file in scan_media(warehouse.media_root):
        extract_frames(warehouse, media_file)
        embed_frames(warehouse, media_file.media_id, encoder)
    return warehouse


@pytest.fixture(scope="module")
def client(built) -> SearchClient:
    return SearchClient(built)


def test_a_stored_frame_used_as_the_query_comes_back_first(client, built):
    hits = client.search_text("a cat", k=3)
    assert len(hits) == 3
    for hit in client.search_text("coffee", k=20):
        image = cv2.imread(hit.thumbnail_path)
        found = client.search_image(image, k=1)[0]
        assert found.similarity == pytest.approx(1.0, abs=1e-3)
        # the same picture may be stored twice (a recurring photo); then either copy is a perfect match
        assert found.frame_id == hit.frame_id or np.array_equal(cv2.imread(found.thumbnail_path), image)


def test_hits_carry_what_a_person_needs(client, built):
    hits = client.search_image(str(built.media_root / "cat.png"), k=5)
    top = hits[0]
    assert top.partition_key == "cat.png" and top.kind == "image" and top.timestamp_s == 0.0
    assert top.similarity == pytest.approx(1.0, abs=1e-3)
    assert top.media_path == str(built.media_root / "cat.png")
    assert built.contains(top.thumbnail_path) and top.thumbnail_path.endswith(".jpg")
    sims = [h.similarity for h in hits]
    assert sims == sorted(sims, reverse=True) and all(0.0 <= s <= 1.0 for s in sims)
    frame = hits.to_polars()
    assert frame.columns == [
        "frame_id",
        "media_id",
        "media_path",
        "partition_key",
        "kind",
        "timestamp_s",
        "thumbnail_path",
        "similarity",
    ]
    assert frame.height == 5 and hits.to_arrow().num_rows == 5


def test_similar_frames_leaves_the_frame_out_and_resolves_duplicates(client, built):
    from media_assets.store import catalog

    rows = catalog.query(built, "SELECT frame_id, duplicate_of FROM frames WHERE is_duplicate LIMIT 1").to_pylist()
    duplicate, original = rows[0]["frame_id"], rows[0]["duplicate_of"]
    hits = client.similar_frames(original, k=5)
    assert original not in [h.frame_id for h in hits]
    assert [h.frame_id for h in client.similar_frames(duplicate, k=5)] == [h.frame_id for h in hits]


def test_bad_queries_are_clear_errors(client):
    for bad_k in (0, -1, 1001, 2.5, "3", True):
        with pytest.raises(SearchError, match="k must"):
            client.search_text("cat", k=bad_k)
    with pytest.raises(SearchError, match="empty"):
        client.search_text("   ")
    with pytest.raises(SearchError, match="characters"):
        client.search_text("x" * 5000)
    with pytest.raises(SearchError, match="unknown frame id"):
        client.similar_frames(12345)
    with pytest.raises(SearchError, match="does not exist"):
        client.search_image("/no/such/image.jpg")
    with pytest.raises(SearchError, match="uint8"):
        client.search_image(np.zeros((4, 4), np.float32))


def test_concurrent_queries_agree_with_sequential_ones(client):
    queries = ["cat", "rocket", "coffee cup", "astronaut"] * 3
    expected = {q: [h.frame_id for h in client.search_text(q, k=4)] for q in set(queries)}
    results, errors = {}, []

    def run(i, q):
        try:
            results[i] = [h.frame_id for h in client.search_text(q, k=4)]
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, q)) for i, q in enumerate(queries)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(results[i] == expected[q] for i, q in enumerate(queries))


def test_similarity_maps_cosine_onto_zero_one():
    assert cosine_to_similarity(1.0) == 1.0 and cosine_to_similarity(-1.0) == 0.0 and cosine_to_similarity(0.0) == 0.5


def test_an_empty_warehouse_returns_no_hits(tmp_path, tiny_clip):
    client = SearchClient(tmp_path / "empty", model=str(tiny_clip))
    assert len(client.search_text("anything")) == 0


def test_the_rclip_style_expression_with_text_an_image_file_and_a_minus(client, built, tiny_clip):
    """`2×'beach' + photo.jpg − 'people'` through the real encoder: the normalised weighted sum of the text
    vectors and the image file's vector, and its search is the search for that vector."""
    encoder = ClipEncoder.load(str(tiny_clip), device="cpu")
    photo_path = built.media_root / "cat.png"
    beach, people = encoder.encode_text(["a beach", "people"])
    image = encoder.encode_images([cv2.imread(str(photo_path))])[0]
    expected = 2 * beach + image - people
    expected /= np.linalg.norm(expected)
    expression = f"2×'a beach' + {photo_path} − 'people'"
    assert client.expression_vector(expression) == pytest.approx(expected, abs=1e-4)
    by_expression = client.search_expression(expression, k=5)
    by_vector = client.search_vector(expected, k=5)
    assert [h.frame_id for h in by_expression] == [h.frame_id for h in by_vector]
    assert [h.similarity for h in by_expression] == pytest.approx([h.similarity for h in by_vector], abs=1e-5)
    with pytest.raises(SearchError, match="cat-missing.png"):
        client.search_expression(f"'a beach' + {built.media_root / 'cat-missing.png'}")
