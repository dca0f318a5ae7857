"""Moments, timelines, filters, multi-query arithmetic, pagination and similar videos, on synthetic
vectors whose geometry the tests choose (no model needed: queries are vectors or stored frames)."""

from __future__ import annotations

import numpy as np
import pytest

from media_assets.demo.synthetic_library import write_synthetic_library
from media_assets.search.client import SearchClient, SearchError, SearchFilter, UnknownIdError
from media_assets.search.query_terms import QueryExpressionError, QueryTerm, parse_expression
from media_assets.store import catalog
from media_assets.warehouse import Warehouse

DIM = 16


def axis(i: int, weight: float = 1.0) -> np.ndarray:
    v = np.zeros(DIM, np.float32)
    v[i] = weight
    return v


def mix(*pairs) -> np.ndarray:
    v = sum(w * axis(i) for i, w in pairs)
    return v / np.linalg.norm(v)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    warehouse = Warehouse.at(tmp_path_factory.mktemp("features") / "warehouse").ensure()
    background = [mix((10 + (i % 5), 1.0)) for i in range(10)]
    a = list(background)
    # file a: the query direction (axis 0) matches at seconds 2-4 and 6-7, second 5 does not
    for seq in (2, 3, 4):
        a[seq] = mix((0, 1.0), (10, 0.05 * (seq - 1)))
    for seq in (6, 7):
        a[seq] = mix((0, 1.0), (11, 0.1))
    b = [mix((12, 1.0))] * 3 + [mix((0, 1.0), (12, 0.6))] + [mix((13, 1.0))] * 4
    both = [mix((1, 1.0)), mix((2, 1.0)), mix((1, 1.0), (2, 1.0)), mix((14, 1.0))]
    photo = [mix((0, 1.0), (3, 1.5))]
    ids = write_synthetic_library(
        warehouse,
        {"clips/a.mp4": a, "clips/b.mp4": b, "other/both.mkv": both, "photos/p.jpg": photo},
        kinds={"photos/p.jpg": "image"},
    )
    return warehouse, ids, SearchClient(warehouse)


def frame_of(ids, key, seq):
    return (ids[key] << 20) | seq


def test_moments_merge_adjacent_matching_frames(library):
    warehouse, ids, client = library
    query = axis(0)
    moments = client.moments(query, k=5)
    top = moments[0]
    assert top.partition_key == "clips/a.mp4"
    # seconds 2-4 and 6-7 match, one unmatched frame between them is bridged (max_gap=1)
    assert (top.start_s, top.end_s, top.frames) == (2.0, 8.0, 5)
    assert top.best_frame_id in {frame_of(ids, "clips/a.mp4", s) for s in (2, 3, 4, 6, 7)}
    assert top.similarity == pytest.approx(max(h.similarity for h in client.search_vector(query, k=1)))
    strict = client.moments(query, k=5, max_gap=0)
    a_moments = sorted((m.start_s, m.end_s) for m in strict if m.partition_key == "clips/a.mp4")
    assert a_moments == [(2.0, 5.0), (6.0, 8.0)]
    # one frame of b matches: a moment of one sampled frame; the photo is a moment at 0
    b_moment = next(m for m in moments if m.partition_key == "clips/b.mp4")
    assert (b_moment.start_s, b_moment.end_s, b_moment.frames) == (3.0, 4.0, 1)
    photo = next(m for m in moments if m.partition_key == "photos/p.jpg")
    assert (photo.start_s, photo.end_s) == (0.0, 0.0)
    sims = [m.similarity for m in moments]
    assert sims == sorted(sims, reverse=True)
    frame = moments.to_polars()
    assert frame.columns[:4] == ["media_id", "media_path", "partition_key", "kind"] and frame.height == len(moments)
    assert moments.to_arrow().num_rows == len(moments)


def test_timeline_scores_each_bucket_by_its_best_frame(library):
    warehouse, ids, client = library
    line = client.timeline(axis(0), ids["clips/a.mp4"], buckets=5)
    assert line.duration_s == 10.0 and line.bucket_s == 2.0 and len(line.scores) == 5
    exact = [
        float((1 + client._vectors_of(np.array([frame_of(ids, "clips/a.mp4", s)]))[0] @ axis(0)) / 2) for s in range(10)
    ]
    assert line.scores == pytest.approx([max(exact[2 * i : 2 * i + 2]) for i in range(5)])
    assert int(np.argmax(line.scores)) in (1, 2, 3)
    fine = client.timeline(axis(0), ids["clips/a.mp4"], bucket_s=0.5)
    # no frame in [0.5, 1.0): the frame at 0 s stands for it
    assert (
        len(fine.scores) == 20
        and fine.scores[1] == fine.scores[0] == pytest.approx(exact[0])
        and fine.scores[2] == pytest.approx(exact[1])
    )
    assert client.timeline(axis(0), ids["clips/a.mp4"]).scores == pytest.approx(exact)  # default: one per frame
    table = line.to_polars()
    assert table.columns == ["start_s", "end_s", "similarity"] and table["start_s"].to_list() == [
        0.0,
        2.0,
        4.0,
        6.0,
        8.0,
    ]
    assert table["similarity"].to_list() == pytest.approx(line.scores) and line.to_arrow().num_rows == 5
    with pytest.raises(UnknownIdError):
        client.timeline(axis(0), 12345)
    with pytest.raises(SearchError, match="buckets"):
        client.timeline(axis(0), ids["clips/a.mp4"], buckets=0)


def test_filters_restrict_by_path_kind_time_and_cluster(library):
    warehouse, ids, client = library
    query = axis(0)
    everywhere = {h.partition_key for h in client.search_vector(query, k=30)}
    assert everywhere == {"clips/a.mp4", "clips/b.mp4", "other/both.mkv", "photos/p.jpg"}
    only_clips = client.search_vector(query, k=30, filters=SearchFilter(media=("clips/*",)))
    assert {h.partition_key for h in only_clips} == {"clips/a.mp4", "clips/b.mp4"} and len(only_clips) == 18
    assert {
        h.partition_key for h in client.search_vector(query, k=30, filters=SearchFilter(media="other/both.mkv"))
    } == {"other/both.mkv"}
    assert {h.kind for h in client.search_vector(query, k=30, filters=SearchFilter(kind="image"))} == {"image"}
    timed = client.search_vector(query, k=30, filters=SearchFilter(start_s=2.0, end_s=4.0, media=("clips/a.mp4",)))
    assert sorted(h.timestamp_s for h in timed) == [2.0, 3.0, 4.0]
    assert len(client.search_vector(query, k=5, filters=SearchFilter(media=("nothing/*",)))) == 0

    # a scene cluster holding shot 0 of b (its first four frames)
    b = ids["clips/b.mp4"]
    catalog.replace_partition(
        warehouse,
        "shots",
        b,
        [
            {
                "shot_id": (b << 20) | i,
                "media_id": b,
                "shot_index": i,
                "start_s": float(s),
                "end_s": float(e),
                "duration_s": float(e - s),
                "start_seq": s,
                "end_seq": e - 1,
                "start_frame_id": (b << 20) | s,
                "end_frame_id": (b << 20) | (e - 1),
                "transition": "cut",
                "boundary_confidence": 1.0,
                "kind": "static",
                "motion": 0.0,
                "keyframe_count": 1,
                "event_count": 0,
                "has_vector": True,
                "run_id": "",
            }
            for i, (s, e) in enumerate([(0, 4), (4, 8)])
        ],
    )
    catalog.replace_table(
        warehouse,
        "clusters",
        [
            {
                "cluster_id": 7,
                "level": "scene",
                "parent_id": None,
                "size": 1,
                "media_count": 1,
                "cohesion": 1.0,
                "representative_member_id": b << 20,
                "representative_frame_id": b << 20,
                "representative_frame_ids": [b << 20],
                "run_id": "",
                "clustered_at": None,
            }
        ],
    )
    catalog.replace_table(
        warehouse,
        "cluster_members",
        [
            {
                "member_kind": "shot",
                "member_id": b << 20,
                "media_id": b,
                "frame_id": b << 20,
                "shot_id": b << 20,
                "level": "scene",
                "cluster_id": 7,
                "scene_id": 7,
                "similarity": 1.0,
                "nearest_cluster_id": 7,
                "is_noise": False,
                "pinned": False,
                "run_id": "",
            }
        ],
    )
    in_cluster = client.search_vector(query, k=30, filters=SearchFilter(cluster_id=7))
    assert sorted(h.frame_id for h in in_cluster) == [(b << 20) | s for s in range(4)]
    with pytest.raises(UnknownIdError, match="unknown cluster id 8"):
        client.search_vector(query, filters=SearchFilter(cluster_id=8))


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"kind": "sound"}, "kind must be one of"),
        ({"start_s": -1.0}, "non-negative"),
        ({"start_s": 5.0, "end_s": 2.0}, "before start_s"),
        ({"cluster_id": "7"}, "cluster_id must be an integer"),
    ],
)
def test_bad_filters_are_refused(bad, message):
    with pytest.raises(SearchError, match=message):
        SearchFilter(**bad)


def test_multi_query_and_or(library):
    warehouse, ids, client = library
    both = ids["other/both.mkv"]
    and_hits = client.search_multi([axis(1), axis(2)], mode="and", k=3)
    assert and_hits[0].frame_id == (both << 20) | 2  # the frame that matches both
    assert and_hits[0].similarity == pytest.approx((1 + 1 / np.sqrt(2)) / 2)
    or_hits = client.search_multi([axis(1), axis(2)], mode="or", k=2)
    assert {h.frame_id for h in or_hits} == {(both << 20) | 0, (both << 20) | 1}
    assert all(h.similarity == pytest.approx(1.0) for h in or_hits)
    with pytest.raises(SearchError, match="mode must be"):
        client.search_multi([axis(1)], mode="xor")
    with pytest.raises(SearchError, match="list of one or more"):
        client.search_multi([], mode="and")


def test_expression_arithmetic_is_a_normalised_weighted_sum(library):
    warehouse, ids, client = library
    f1, f2 = (ids["other/both.mkv"] << 20) | 0, (ids["other/both.mkv"] << 20) | 1
    vector = client.expression_vector(f"2×frame:{f1} − frame:{f2}")
    expected = 2 * axis(1) - axis(2)
    assert vector == pytest.approx(expected / np.linalg.norm(expected), abs=1e-6)
    terms = [QueryTerm("frame", f1, 0.5), QueryTerm("frame", f2, 0.5)]
    assert client.expression_vector(terms) == pytest.approx(mix((1, 1.0), (2, 1.0)), abs=1e-6)
    assert client.search_expression(terms, k=1)[0].frame_id == (ids["other/both.mkv"] << 20) | 2
    with pytest.raises(SearchError, match="cancel out"):
        client.expression_vector(f"frame:{f1} - frame:{f1}")


def test_expression_parsing():
    assert parse_expression("2×'beach' + \"sunset\" − people") == [
        QueryTerm("text", "beach", 2.0),
        QueryTerm("text", "sunset", 1.0),
        QueryTerm("text", "people", -1.0),
    ]
    assert parse_expression("black-and-white photo") == [QueryTerm("text", "black-and-white photo", 1.0)]
    assert parse_expression("0.5x frame:42") == [QueryTerm("frame", 42, 0.5)]
    with pytest.raises(QueryExpressionError, match="does not exist"):
        parse_expression("'cat' + missing.jpg")
    with pytest.raises(QueryExpressionError, match="image files cannot be used here"):
        parse_expression("'cat' + /etc/passwd.jpg", allow_files=False)
    with pytest.raises(QueryExpressionError, match="no term after it"):
        parse_expression("'cat' + ")
    with pytest.raises(QueryExpressionError, match="at least one added"):
        parse_expression("- 'cat'")
    with pytest.raises(QueryExpressionError, match="empty"):
        parse_expression("   ")


def test_pagination_is_a_window_of_one_ranking(library):
    _, _, client = library
    everything = client.search_vector(axis(0), k=20)
    page = client.search_vector(axis(0), k=5, offset=5)
    assert [h.frame_id for h in page] == [h.frame_id for h in everything][5:10]
    assert len(client.search_vector(axis(0), k=5, offset=10_000)) == 0
    with pytest.raises(SearchError, match="offset must be between"):
        client.search_vector(axis(0), offset=-1)


def test_similar_videos_from_frames(library):
    _, ids, client = library
    videos = client.similar_videos(ids["clips/a.mp4"], k=3)
    assert ids["clips/a.mp4"] not in {v.media_id for v in videos}
    assert videos[0].basis == "frames" and videos[0].similarity >= videos[-1].similarity
    assert videos.to_polars().height == len(videos)
    with pytest.raises(UnknownIdError):
        client.similar_videos(999)


def test_similar_videos_prefers_shot_vectors(tmp_path):
    from media_assets.store.vectors import SHOT_VECTORS, VectorStore

    warehouse = Warehouse.at(tmp_path / "warehouse").ensure()
    ids = write_synthetic_library(
        warehouse, {"x.mp4": [axis(0), axis(1)], "y.mp4": [axis(5), axis(6)], "z.mp4": [axis(7), axis(8)]}
    )
    shots = VectorStore(warehouse, SHOT_VECTORS)
    # by their shots, x and z share a scene (axis 3); y is elsewhere
    shots.replace_media(ids["x.mp4"], np.array([ids["x.mp4"] << 20]), axis(3)[None], model_id="synthetic")
    shots.replace_media(ids["y.mp4"], np.array([ids["y.mp4"] << 20]), axis(4)[None], model_id="synthetic")
    shots.replace_media(
        ids["z.mp4"], np.array([ids["z.mp4"] << 20]), mix((3, 1.0), (9, 0.2))[None], model_id="synthetic"
    )
    videos = SearchClient(warehouse).similar_videos(ids["x.mp4"])
    assert [v.partition_key for v in videos] == ["z.mp4", "y.mp4"] and videos[0].basis == "shots"
