"""The HTTP API: every endpoint, its status codes for bad input (including path tricks), Range requests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from mediagen import photo, shots_video

from media_assets.apps.server import MAX_UPLOAD_BYTES, create_app
from media_assets.defs.runner import ingest
from media_assets.ids import media_id_for
from media_assets.store import catalog
from media_assets.warehouse import Warehouse


def build_small_warehouse(root: Path, tiny_clip: Path) -> Warehouse:
    """Two videos and a photo, ingested the way `media-assets ingest` does (Dagster runs, index, clusters)."""
    warehouse = Warehouse.at(root).ensure()
    shots_video(warehouse.media_root / "clips" / "a.mp4", ["astronaut", "chelsea", "coffee"], seconds_each=2.0)
    # large enough for the face detector to find the astronaut's face
    shots_video(warehouse.media_root / "b.mp4", ["rocket", "astronaut"], seconds_each=2.0, size=(512, 512))
    cv2.imwrite(str(warehouse.media_root / "cat.png"), photo("chelsea", (400, 300)))
    report = ingest(warehouse, clip_model=str(tiny_clip), device="cpu", frames_config={"sample_fps": 2.0})
    assert not report.failed and len(report.succeeded) == 3, report.failed
    return warehouse


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_clip):
    warehouse = build_small_warehouse(tmp_path_factory.mktemp("server") / "warehouse", tiny_clip)
    with TestClient(create_app(warehouse)) as http:
        yield warehouse, http


def test_health_reports_counts_model_and_index(served, tiny_clip):
    _, http = served
    body = http.get("/health").json()
    assert body["status"] == "ok" and body["model"] == str(tiny_clip)
    assert body["counts"]["media"] == 3 and body["counts"]["frame_vectors"] > 0 and body["counts"]["shots"] >= 6
    assert body["index"]["state"] == "current" and body["index"]["nodes"] == body["counts"]["frame_vectors"]


def test_search_text_multi_expression_and_pagination(served):
    _, http = served
    body = http.get("/search", params={"q": "a cat", "k": 5}).json()
    hits = body["results"]
    assert len(hits) == 5 and all(0 <= h["similarity"] <= 1 for h in hits)
    assert [h["similarity"] for h in hits] == sorted((h["similarity"] for h in hits), reverse=True)
    assert hits[0]["thumbnail_url"] == f"/frame/{hits[0]['frame_id']}" and "media_path" not in hits[0]
    page = http.get("/search", params={"q": "a cat", "k": 2, "offset": 2}).json()["results"]
    assert [h["frame_id"] for h in page] == [h["frame_id"] for h in hits[2:4]]
    both = http.get("/search", params=[("q", "a cat"), ("q", "a rocket"), ("mode", "or"), ("k", 3)])
    assert both.status_code == 200 and len(both.json()["results"]) == 3
    frame = hits[0]["frame_id"]
    expr = http.get("/search", params={"expr": f"2×frame:{frame} − 'a dog'", "k": 1}).json()["results"]
    assert len(expr) == 1
    only_photos = http.get("/search", params={"q": "a cat", "kind": "image"}).json()["results"]
    assert {h["kind"] for h in only_photos} == {"image"}
    clips = http.get("/search", params={"q": "a cat", "media": "clips/*", "k": 50}).json()["results"]
    assert {h["partition_key"] for h in clips} == {"clips/a.mp4"}


@pytest.mark.parametrize(
    "params, status, message",
    [
        ({}, 422, "give either q"),
        ({"q": "   "}, 422, "empty"),
        ({"q": "x" * 2001}, 422, "at most 2000"),
        ({"q": "cat", "k": 0}, 422, ""),
        ({"q": "cat", "k": "ten"}, 422, ""),
        ({"q": "cat", "k": 1001}, 422, ""),
        ({"q": "cat", "offset": -1}, 422, ""),
        ({"q": "cat", "kind": "sound"}, 422, ""),
        ({"q": "cat", "start_s": -1}, 422, ""),
        ({"q": "cat", "start_s": 5, "end_s": 1}, 422, "before start_s"),
        ({"q": "cat", "mode": "xor"}, 422, ""),
        ({"q": "cat", "cluster_id": 999999}, 404, "unknown cluster id"),
        ({"expr": "'cat' + /etc/passwd.png"}, 422, "image files cannot be used here"),
        ({"expr": "'cat' + ../../secret.jpg"}, 422, "image files cannot be used here"),
        ({"expr": "frame:1"}, 404, "unknown frame id"),
        ({"q": "cat", "expr": "'dog'"}, 422, "either q"),
    ],
)
def test_bad_search_parameters(served, params, status, message):
    _, http = served
    response = http.get("/search", params=params)
    assert response.status_code == status, response.text
    assert message in str(response.json()["detail"])


def test_image_upload(served):
    warehouse, http = served
    png = cv2.imencode(".png", photo("chelsea", (400, 300)))[1].tobytes()
    response = http.post("/search/image", files={"file": ("cat.png", png, "image/png")}, params={"k": 3})
    assert response.status_code == 200
    top = response.json()["results"][0]
    assert top["partition_key"] == "cat.png" and top["similarity"] == pytest.approx(1.0, abs=2e-3)
    assert http.post("/search/image", files={"file": ("x.png", b"", "image/png")}).status_code == 422
    bad = http.post("/search/image", files={"file": ("x.png", b"not an image at all", "image/png")})
    assert bad.status_code == 422 and "not an image" in bad.json()["detail"]
    big = http.post("/search/image", files={"file": ("big.png", b"\0" * (MAX_UPLOAD_BYTES + 1), "image/png")})
    assert big.status_code == 413
    huge = http.post("/search/image", files={"file": ("huge.png", b"\0" * (3 * MAX_UPLOAD_BYTES), "image/png")})
    assert huge.status_code == 413 and "larger than 10 MiB" in huge.json()["detail"]
    assert http.post("/search/image").status_code == 422  # no file


def test_moments_and_timelines(served):
    _, http = served
    moments = http.get("/moments", params={"q": "a cat", "k": 5, "timeline_buckets": 12}).json()["results"]
    assert moments and all(m["end_s"] >= m["start_s"] for m in moments)
    video = next(m for m in moments if m["kind"] == "video")
    assert len(video["timeline"]["scores"]) == 12 and video["thumbnail_url"] == f"/frame/{video['best_frame_id']}"
    line = http.get(f"/timeline/{video['media_id']}", params={"q": "a cat", "buckets": 6}).json()
    assert len(line["scores"]) == 6 and line["duration_s"] > 0
    assert http.get("/timeline/123", params={"q": "a cat"}).status_code == 404
    assert http.get(f"/timeline/{video['media_id']}").status_code == 422  # q is required
    assert http.get("/moments", params={"q": ""}).status_code == 422


def test_similar_frames_and_videos(served):
    _, http = served
    frame = http.get("/search", params={"q": "a rocket", "k": 1}).json()["results"][0]
    similar = http.get(f"/similar/frame/{frame['frame_id']}", params={"k": 4}).json()["results"]
    assert len(similar) == 4 and frame["frame_id"] not in {h["frame_id"] for h in similar}
    videos = http.get(f"/similar/video/{media_id_for('b.mp4')}").json()["results"]
    assert {v["partition_key"] for v in videos} == {"clips/a.mp4", "cat.png"} and videos[0]["basis"] == "shots"
    assert http.get("/similar/frame/42").status_code == 404
    assert http.get("/similar/video/42").status_code == 404


def test_frames_faces_and_static_files(served):
    warehouse, http = served
    frame = http.get("/search", params={"q": "a cat", "k": 1}).json()["results"][0]
    image = http.get(f"/frame/{frame['frame_id']}")
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(image.content, np.uint8), cv2.IMREAD_COLOR) is not None
    faces = catalog.query(warehouse, "SELECT face_id FROM faces").to_pylist()
    assert faces, "the small warehouse has no face (the astronaut's): the test needs one"
    crop = http.get(f"/face/{faces[0]['face_id']}")
    assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg"
    assert http.get("/face/1").status_code == 404
    assert http.get("/").status_code == 200 and "<title>media_assets</title>" in http.get("/").text
    assert http.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert http.get("/docs").status_code == 200
    assert "/search" in http.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize(
    "path",
    [
        "/frame/99999999999999999999",
        "/frame/9223372036854775808",
        "/similar/frame/99999999999999999999",
        "/video/99999999999999999999",
        "/face/-5",
        "/clusters/18446744073709551616",
        "/similar/video/99999999999999999999",
        "/timeline/99999999999999999999?q=x",
        "/search?q=cat&cluster_id=99999999999999999999",
        "/feedback?after_seq=99999999999999999999",
    ],
)
def test_ids_out_of_range_are_bad_parameters(served, path):
    _, http = served
    response = http.get(path)
    assert response.status_code == 422, (path, response.status_code, response.text)
    assert "less than or equal" in response.text or "greater than or equal" in response.text


def test_largest_id_is_just_unknown(served):
    _, http = served
    for path in ("/frame/9223372036854775807", "/similar/frame/9223372036854775807", "/video/9223372036854775807"):
        assert http.get(path).status_code == 404, path
    moved = http.post("/feedback/move", json={"member_kind": "shot", "member_id": 2**64, "cluster_id": 1})
    assert moved.status_code == 422


def _asgi_call(app, chunks, headers=()):
    """Drive an ASGI app with a POST whose body arrives in `chunks`; returns (status, body, chunks pulled)."""
    import asyncio

    pulled, sent = [], []

    async def receive():
        if len(pulled) < len(chunks):
            pulled.append(chunks[len(pulled)])
            return {"type": "http.request", "body": pulled[-1], "more_body": len(pulled) < len(chunks)}
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/search/image",
        "raw_path": b"/search/image",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"multipart/form-data; boundary=xyz"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body, len(pulled)


def test_oversized_uploads_are_refused_before_they_are_read(served):
    warehouse, _ = served
    app = create_app(warehouse)
    # the request says how large it is: refused without reading any of it
    status, body, pulled = _asgi_call(app, [b"x" * 1024] * 4, headers=[(b"content-length", str(50 * 2**20).encode())])
    assert status == 413 and b"larger than 10 MiB" in body and pulled == 0
    # a streamed (chunked) body: refused once it passes the limit, the rest never read
    head = (
        b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\nContent-Type: image/png\r\n\r\n'
    )
    status, body, pulled = _asgi_call(app, [head] + [b"\0" * 2**20] * 40)
    assert status == 413 and b"larger than 10 MiB" in body and pulled == 12


@pytest.mark.parametrize(
    "path",
    [
        "/frame/..%2F..%2Fetc%2Fpasswd",
        "/frame/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/frame/..%252f..%252fetc%252fpasswd",
        "/frame/../../etc/passwd",
        "/frame/-1",
        "/frame/1e3",
        "/video/..%2F..%2F..%2Fetc%2Fpasswd",
        "/video/%2e%2e",
        "/face/..%2Fcatalog.duckdb",
        "/static/..%2Fserver.py",
        "/static/%2e%2e%2fserver.py",
        "/static/..%252f..%252fpyproject.toml",
        "/static/index.html%00.js",
        "/clusters/..%2F..%2Fetc",
        "/timeline/..%2Fetc?q=x",
    ],
)
def test_path_tricks_never_reach_a_file(served, path):
    _, http = served
    response = http.get(path)
    assert response.status_code in (404, 422), (path, response.status_code)
    assert (
        b"root:" not in response.content
        and b"[project]" not in response.content
        and b"def create_app" not in response.content
    )


def test_files_outside_the_media_root_are_not_served(served, tmp_path):
    warehouse, http = served
    outside = tmp_path / "secret.mp4"
    outside.write_bytes(b"secret bytes")
    fake = media_id_for("../secret.mp4")
    row = catalog.read_partition(warehouse, "media", media_id_for("b.mp4")).to_pylist()[0]
    catalog.replace_partition(
        warehouse, "media", fake, [row | {"media_id": fake, "partition_key": "../secret.mp4", "path": str(outside)}]
    )
    try:
        response = http.get(f"/video/{fake}")  # the catalog says so, but the file is outside the media root
        assert response.status_code == 404 and b"secret" not in response.content
    finally:
        catalog.delete_partition(warehouse, fake, ["media"])


def test_video_range_requests(served):
    warehouse, http = served
    media_id = media_id_for("clips/a.mp4")
    data = (warehouse.media_root / "clips" / "a.mp4").read_bytes()
    whole = http.get(f"/video/{media_id}", params={"original": True})
    assert whole.status_code == 200 and whole.content == data and whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "video/mp4"
    part = http.get(f"/video/{media_id}?original=true", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    tail = http.get(f"/video/{media_id}?original=true", headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == data[-50:]
    open_ended = http.get(f"/video/{media_id}?original=true", headers={"Range": f"bytes={len(data) - 10}-"})
    assert open_ended.status_code == 206 and open_ended.content == data[-10:]
    beyond = http.get(f"/video/{media_id}?original=true", headers={"Range": f"bytes={len(data) + 10}-{len(data) + 20}"})
    assert beyond.status_code == 416

    # OpenCV's mp4v is not something a browser decodes: by default the API serves a WebM playback copy
    # with the same frame rate and frame count (so times match), seekable too
    playback = http.get(f"/video/{media_id}")
    assert playback.status_code == 200 and playback.headers["content-type"] == "video/webm"
    copy = next((warehouse.root / "playback").glob(f"{media_id}-*.webm"))
    assert playback.content == copy.read_bytes()
    original, proxy = cv2.VideoCapture(str(warehouse.media_root / "clips" / "a.mp4")), cv2.VideoCapture(str(copy))
    assert proxy.get(cv2.CAP_PROP_FPS) == pytest.approx(original.get(cv2.CAP_PROP_FPS))
    assert abs(proxy.get(cv2.CAP_PROP_FRAME_COUNT) - original.get(cv2.CAP_PROP_FRAME_COUNT)) <= 1
    ranged = http.get(f"/video/{media_id}", headers={"Range": "bytes=0-9"})
    assert ranged.status_code == 206 and ranged.content == copy.read_bytes()[:10]
    photo_file = http.get(f"/video/{media_id_for('cat.png')}")
    assert photo_file.status_code == 200 and photo_file.headers["content-type"] == "image/png"
    assert http.get("/video/77").status_code == 404


def test_clusters_and_pinning_through_the_api(served):
    warehouse, http = served
    body = http.get("/clusters").json()
    assert set(body) == {"clusters", "noise"}
    shots = catalog.query(warehouse, "SELECT count(*) AS n FROM shots").to_pylist()[0]["n"]
    in_clusters = sum(c["size"] for c in body["clusters"] if c["level"] == "scene")
    noise_shots = sum(1 for m in body["noise"]["members"] if m["member_kind"] == "shot")
    assert in_clusters + noise_shots == shots
    assert http.get("/clusters", params={"level": "galaxy"}).status_code == 422
    assert http.get("/clusters/999999").status_code == 404
    shot = catalog.query(warehouse, "SELECT shot_id FROM shots ORDER BY shot_id LIMIT 1").to_pylist()[0]["shot_id"]
    assert body["clusters"], "the small warehouse has no cluster: the test needs one"
    scene = next(c for c in body["clusters"] if c["level"] == "scene")
    detail = http.get(f"/clusters/{scene['cluster_id']}").json()
    assert detail["cluster_id"] == scene["cluster_id"] and len(detail["members"]) == scene["size"]
    # similarity on the API's [0, 1] scale, the raw cosine beside it
    for member in detail["members"] + body["noise"]["members"]:
        if member["similarity"] is None:  # a noise face in a scene with no character cluster to be near
            assert (
                member in body["noise"]["members"] and member["nearest_cluster_id"] is None and member["cosine"] is None
            )
            continue
        assert 0 <= member["similarity"] <= 1
        assert member["similarity"] == pytest.approx((1 + member["cosine"]) / 2)
    response = http.post(
        "/feedback/move", json={"member_kind": "shot", "member_id": shot, "cluster_id": scene["cluster_id"]}
    )
    assert response.status_code == 201 and response.json()["source"] == "api"
    pins = catalog.query(warehouse, "SELECT member_kind, member_id, cluster_id, source FROM cluster_pins").to_pylist()
    assert pins == [{"member_kind": "shot", "member_id": shot, "cluster_id": scene["cluster_id"], "source": "api"}]
    assert (
        http.post("/feedback/move", json={"member_kind": "frame", "member_id": shot, "cluster_id": 1}).status_code
        == 422
    )
    assert (
        http.post("/feedback/move", json={"member_kind": "shot", "member_id": 5, "cluster_id": None}).status_code == 404
    )
    assert http.post("/feedback/move", json={"member_kind": "shot", "member_id": "x"}).status_code == 422


def test_playback_copies_can_be_made_ahead(served):
    warehouse, http = served
    for stale in (warehouse.root / "playback").glob("*.webm"):
        stale.unlink()
    from media_assets.apps.server import prepare_playback_copies

    assert prepare_playback_copies(warehouse) == 2  # both mp4v videos; the photo needs none
    assert prepare_playback_copies(warehouse) == 0  # made once
    assert len(list((warehouse.root / "playback").glob("*.webm"))) == 2
    response = http.get(f"/video/{media_id_for('b.mp4')}")
    assert response.status_code == 200 and response.headers["content-type"] == "video/webm"
