"""The HTTP API and the web page: `media-assets serve` (FastAPI + uvicorn).

Every response that scores something uses `similarity` in [0, 1], higher is better (see `search`). Every
id in a path is an integer validated against the catalog; files are served only when they are what the
catalog says (a thumbnail or face crop inside the warehouse, a media file inside the media root), so no
path a client sends ever reaches the filesystem. Unknown ids are 404, bad parameters 422 with a message,
uploads over `MAX_UPLOAD_BYTES` 413 (refused as soon as the request says or shows it is larger, before the
body is read or stored). OpenAPI docs at `/docs`.

Frame, shot and face ids are 63-bit integers (`media_id << 20 | n`): JavaScript clients must read them
without going through a float (the page reads long integers as strings); media and cluster ids are small.

Who may call which endpoint (tokens with a viewer or editor role, the Host and Origin checks, the login
cookie) is `apps/access.py`'s: its `ROUTE_ROLES` must list every route declared here, or the app is refused.
"""

import logging
import threading
from importlib import resources
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from media_assets.apps.access import Access, feedback_source, serving_access
from media_assets.apps.access import install as install_access
from media_assets.apps.uploads import read_image_upload
from media_assets.feedback.table import (
    FeedbackError,
    feedback_rows,
    record_merge,
    record_move,
    record_pair,
    record_relevance,
    record_split,
)
from media_assets.ids import MAX_ID
from media_assets.media.playback import PlaybackError, browser_can_play, playable_path, proxy_path
from media_assets.search.client import (
    MAX_K,
    MAX_OFFSET,
    SearchClient,
    SearchError,
    SearchFilter,
    UnknownIdError,
    cosine_to_similarity,
)
from media_assets.search.fusion import MODES as FUSED_MODES
from media_assets.store import catalog
from media_assets.store.chapters import ChaptersNotFoundError, chapters_as
from media_assets.store.transcripts import TranscriptNotFoundError, transcript_as
from media_assets.warehouse import Warehouse

log = logging.getLogger(__name__)

SEARCH_MODES = ("and", "or", *FUSED_MODES)
CHAPTER_TYPES = {"vtt": "text/vtt; charset=utf-8", "youtube": "text/plain; charset=utf-8"}
TRANSCRIPT_TYPES = {
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
}
MAX_UPLOAD_BYTES = 10 * 2**20
# a multipart request carries the file plus its boundaries and part headers
MAX_UPLOAD_REQUEST_BYTES = MAX_UPLOAD_BYTES + 64 * 2**10
UPLOAD_PATHS = ("/search/image",)
WEB_FILES = {
    "": ("index.html", "text/html; charset=utf-8"),
    "app.js": ("app.js", "text/javascript"),
    "style.css": ("style.css", "text/css"),
}


# Query parameters shared by the search endpoints (this module must not use postponed annotations: FastAPI
# reads these at import).
K = Annotated[int, Query(ge=1, le=MAX_K, description="How many results")]
OFFSET = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Results to skip (pagination)")]
MEDIA = Annotated[list[str] | None, Query(description="Media paths or globs relative to the media root (repeatable)")]
KIND = Annotated[str | None, Query(pattern="^(video|image|audio)$")]
START = Annotated[float | None, Query(ge=0, description="Only frames at or after this time (s)")]
END = Annotated[float | None, Query(ge=0, description="Only frames at or before this time (s)")]
CLUSTER = Annotated[int | None, Query(ge=0, le=MAX_ID, description="Only frames of this cluster's shots")]
# ids in paths: out of the id range is a bad parameter (422), in range but not in the catalog unknown (404)
FRAME_ID = Annotated[int, PathParam(ge=0, le=MAX_ID, description="A frame id (media_id << 20 | seq)")]
FACE_ID = Annotated[int, PathParam(ge=0, le=MAX_ID, description="A face id")]
MEDIA_ID = Annotated[int, PathParam(ge=0, le=MAX_ID, description="A media id")]
CLUSTER_ID = Annotated[int, PathParam(ge=0, le=MAX_ID, description="A cluster id")]


ID = Annotated[int, Field(ge=0, le=MAX_ID)]
# what a feedback row written through the API records: api:<token name> (open: api), see apps/access.py
SOURCE = Annotated[str, Depends(feedback_source)]


class MoveRequest(BaseModel):
    member_kind: str = Field(description="'shot' or 'face'")
    member_id: ID
    cluster_id: ID | None = Field(description="The cluster it belongs to; null takes a pin back")


class MergeRequest(BaseModel):
    into_cluster_id: ID
    from_cluster_id: ID


class SplitRequest(BaseModel):
    cluster_id: ID
    member_kind: str = Field(description="'shot' (scene clusters) or 'face' (character clusters)")
    member_ids: list[ID] = Field(min_length=1, max_length=10_000)


class PairRequest(BaseModel):
    member_kind: str = Field(description="'shot', 'face' or 'frame'")
    member_id: ID
    other_member_id: ID
    same: bool


class RelevanceRequest(BaseModel):
    query: str = Field(min_length=1, max_length=2000)
    frame_id: ID
    relevant: bool


class _UploadTooLarge(Exception):
    pass


class UploadLimit:
    """ASGI middleware: a request to an upload path whose body is larger than `limit` bytes gets 413 before
    the application reads (or spools to disk) more of it than that: at once when its Content-Length says
    so, else as soon as the streamed body passes the limit."""

    def __init__(self, app, limit: int = MAX_UPLOAD_REQUEST_BYTES, paths: tuple[str, ...] = UPLOAD_PATHS):
        self.app, self.limit, self.paths = app, limit, paths

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] not in self.paths:
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await self._refuse(send)
        state = {"received": 0, "over": False}

        async def limited_receive():
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.limit:
                    state["over"] = True
                    raise _UploadTooLarge()
            return message

        async def guarded_send(message):
            if not state["over"]:  # once over the limit, the application's own reply is not sent
                await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not state["over"]:
                raise
        if state["over"]:
            await self._refuse(send)

    async def _refuse(self, send) -> None:
        await JSONResponse({"detail": f"the upload is larger than {MAX_UPLOAD_BYTES // 2**20} MiB"}, status_code=413)(
            {"type": "http"}, None, send
        )


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except (ValueError, OSError):
        return False


def prepare_playback_copies(warehouse: Warehouse) -> int:
    """Make the playback copies of every video a browser cannot play that lacks one (so no first preview
    waits for its copy); returns how many were made. Files that fail are logged and skipped."""
    made = 0
    for media in catalog.query(
        warehouse, "SELECT * FROM media WHERE kind = 'video' ORDER BY partition_key"
    ).to_pylist():
        if browser_can_play(media) or not Path(media["path"]).is_file() or proxy_path(warehouse, media).is_file():
            continue
        try:
            playable_path(warehouse, media)
            made += 1
        except (PlaybackError, OSError) as exc:
            log.warning("no playback copy for %s: %s", media["partition_key"], exc)
    return made


def create_app(
    warehouse: Warehouse | str | Path | None = None,
    *,
    client: SearchClient | None = None,
    prepare_playback: bool = False,
    access: Access | None = None,
) -> FastAPI:
    """The API and page over one warehouse. With `prepare_playback`, a background thread makes the playback
    copies that are missing (`prepare_playback_copies`) while the server already answers. `access` says who
    may call what (`apps/access.py`); the default, `Access.in_process()`, is open and checks no Host: for an
    app called in process (FastAPI's TestClient). `serve` always passes a server's policy."""
    warehouse = warehouse if isinstance(warehouse, Warehouse) else Warehouse.at(warehouse)
    client = client or SearchClient(warehouse)
    app = FastAPI(
        title="media_assets",
        description="Search a media warehouse: frames, moments, timelines, similar frames and videos, clusters.",
        version="1",
    )
    app.add_middleware(UploadLimit)
    health_lock = threading.Lock()
    if prepare_playback:
        threading.Thread(target=prepare_playback_copies, args=(warehouse,), name="playback-copies", daemon=True).start()

    @app.exception_handler(UnknownIdError)
    def unknown_id(_: Request, exc: UnknownIdError):
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(SearchError)
    def bad_search(_: Request, exc: SearchError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(FeedbackError)
    def bad_feedback(_: Request, exc: FeedbackError):
        status = 404 if str(exc).startswith("there is no") else 422
        return JSONResponse({"detail": str(exc)}, status_code=status)

    def filters(
        media: list[str] | None, kind: str | None, start_s: float | None, end_s: float | None, cluster_id: int | None
    ) -> SearchFilter:
        return SearchFilter(media=tuple(media or ()), kind=kind, start_s=start_s, end_s=end_s, cluster_id=cluster_id)

    def with_timelines(query: str, results: list[dict], buckets: int) -> list[dict]:
        """Each video moment with its video's timeline for `query` (`buckets` 0: none), for the heatmaps."""
        if buckets:
            media_ids = list(dict.fromkeys(m["media_id"] for m in results if m["kind"] == "video"))
            lines = {t.media_id: t.to_dict() for t in client.timelines(query, media_ids, buckets=buckets)}
            for moment in results:
                moment["timeline"] = lines.get(moment["media_id"])
        return results

    # -- pages ---------------------------------------------------------------------------------------

    def web_file(name: str) -> Response:
        filename, media_type = WEB_FILES[name]
        text = resources.files("media_assets.apps").joinpath("web", filename).read_text(encoding="utf-8")
        return Response(text, media_type=media_type)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index_page():
        return web_file("")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str):
        if name not in WEB_FILES or not name:
            raise HTTPException(404, f"no static file {name!r}")
        return web_file(name)

    # -- status --------------------------------------------------------------------------------------

    @app.get("/health")
    def health():
        """Status, counts, model and index state."""
        with health_lock:
            counts = catalog.query(
                warehouse,
                "SELECT (SELECT count(*) FROM media) AS media, (SELECT count(*) FROM frames) AS frames, "
                "(SELECT count(*) FROM shots) AS shots, (SELECT count(*) FROM clusters) AS clusters",
            ).to_pylist()[0]
        index, state = client.index.get()
        models = client.vectors.model_ids()
        return {
            "status": "ok",
            "warehouse": str(warehouse.root),
            "counts": counts | {"frame_vectors": client.vectors.count()},
            "model": models[0] if len(models) == 1 else models,
            "index": {"state": state, "nodes": len(index) if index is not None else 0},
        }

    # -- search --------------------------------------------------------------------------------------

    @app.get("/search")
    def search(
        q: Annotated[list[str] | None, Query(description="Text query; repeat for several (see mode)")] = None,
        expr: Annotated[
            str | None, Query(description="Weighted expression, e.g. 2×'beach' + frame:123 − 'people'")
        ] = None,
        mode: Annotated[
            str,
            Query(
                pattern=f"^({'|'.join(SEARCH_MODES)})$",
                description="and/or: how several q combine (frames). A fused mode searches one q in what is seen, "
                "said and shown and returns moments that say why: balanced (0.5 text / 0.5 vision), text_heavy, "
                "vision_heavy, or one modality: speech, screen_text, keyword, visual",
            ),
        ] = "and",
        k: K = 20,
        offset: OFFSET = 0,
        media: MEDIA = None,
        kind: KIND = None,
        start_s: START = None,
        end_s: END = None,
        cluster_id: CLUSTER = None,
        timeline_buckets: Annotated[
            int, Query(ge=0, le=1000, description="With a fused mode: each video's visual timeline (0: none)")
        ] = 0,
    ):
        """Frames for a text, several texts (AND/OR) or a weighted expression, best first; with a fused `mode`,
        moments of what is seen, said and shown, each saying why it matched."""
        chosen = filters(media, kind, start_s, end_s, cluster_id)
        if (not q) == (expr is None):
            raise SearchError("give either q (one or more) or expr")
        if mode in FUSED_MODES:
            if expr is not None or len(q) != 1:
                raise SearchError(f"mode={mode} searches one q")
            found = client.search(q[0], mode=mode, k=k, offset=offset, filters=chosen)
            results = with_timelines(q[0], _public_fused(found.to_dicts()), timeline_buckets)
            return {"results": results, "k": k, "offset": offset, "mode": mode, "weights": found.weights}
        if expr is not None:
            hits = client.search_expression(expr, k, offset=offset, filters=chosen, allow_files=False)
        elif len(q) == 1:
            hits = client.search_text(q[0], k, offset=offset, filters=chosen)
        else:
            hits = client.search_multi(q, mode, k, offset=offset, filters=chosen)
        return {"results": _public_hits(hits.to_dicts()), "k": k, "offset": offset}

    @app.post("/search/image")
    async def search_image(
        file: UploadFile,
        k: K = 20,
        offset: OFFSET = 0,
        media: MEDIA = None,
        kind: KIND = None,
        start_s: START = None,
        end_s: END = None,
        cluster_id: CLUSTER = None,
    ):
        """Frames that look like an uploaded image: JPEG, PNG, WebP, GIF, BMP or TIFF, told by its content (not
        its name or Content-Type); at most 10 MiB and `MEDIA_ASSETS_MAX_PIXELS` pixels (413 over either), 422
        for anything that is not such an image or is truncated."""

        image = await read_image_upload(file, MAX_UPLOAD_BYTES)
        hits = client.search_image(image, k, offset=offset, filters=filters(media, kind, start_s, end_s, cluster_id))
        return {"results": _public_hits(hits.to_dicts()), "k": k, "offset": offset}

    @app.get("/moments")
    def moments(
        q: Annotated[str, Query(min_length=1, description="Text query")],
        k: K = 10,
        offset: OFFSET = 0,
        media: MEDIA = None,
        kind: KIND = None,
        start_s: START = None,
        end_s: END = None,
        cluster_id: CLUSTER = None,
        timeline_buckets: Annotated[
            int, Query(ge=0, le=1000, description="Add a timeline per video with this many buckets (0: none)")
        ] = 0,
    ):
        """Time ranges where the text matches (adjacent matching frames merged), best first; optionally
        each video's timeline for a heatmap."""
        found = client.moments(q, k, offset=offset, filters=filters(media, kind, start_s, end_s, cluster_id))
        results = with_timelines(q, _public_moments(found.to_dicts()), timeline_buckets)
        return {"results": results, "k": k, "offset": offset}

    @app.get("/timeline/{media_id}")
    def timeline(
        media_id: MEDIA_ID,
        q: Annotated[str, Query(min_length=1)],
        buckets: Annotated[int | None, Query(ge=1, le=10_000)] = None,
    ):
        """The text's similarity over one video's time, per bucket."""
        return client.timeline(q, media_id, buckets=buckets).to_dict()

    @app.get(
        "/transcript/{media_id}",
        responses={200: {"content": {"application/json": {}, "text/vtt": {}, "application/x-subrip": {}}}},
    )
    def transcript(
        media_id: MEDIA_ID,
        format: Annotated[str, Query(pattern="^(json|srt|vtt|txt)$", description="json, srt, vtt or txt")] = "json",
        source: Annotated[
            str | None, Query(max_length=200, description="'asr', 'subtitles' or an exact source")
        ] = None,
    ):
        """One file's stored transcript: JSON segments with their words' times, or subtitles (SRT, WebVTT)."""
        if not catalog.query(warehouse, "SELECT 1 FROM media WHERE media_id = ?", [media_id]).num_rows:
            raise UnknownIdError(f"unknown media id {media_id}")
        try:
            text = transcript_as(warehouse, media_id, format, source=source)
        except TranscriptNotFoundError as exc:
            raise HTTPException(404, f"media {media_id} has no transcript ({exc})") from exc
        if format == "json":
            return Response(text, media_type="application/json")
        return Response(text, media_type=TRANSCRIPT_TYPES[format])

    @app.get(
        "/chapters/{media_id}",
        responses={200: {"content": {"application/json": {}, "text/vtt": {}, "text/plain": {}}}},
    )
    def chapters(
        media_id: MEDIA_ID,
        format: Annotated[
            str, Query(pattern="^(json|vtt|youtube)$", description="json, vtt (a WebVTT chapters track) or youtube")
        ] = "json",
    ):
        """One file's table of contents: its chapters (time range, title, summary, method) and its summary, as
        JSON, a WebVTT chapters track (for `<track kind="chapters">`) or YouTube description lines."""
        if format != "json":
            try:
                return Response(chapters_as(warehouse, media_id, format), media_type=CHAPTER_TYPES[format])
            except ChaptersNotFoundError as exc:
                raise UnknownIdError(str(exc)) from exc
        toc = client.chapters(media_id).to_dict()
        toc.pop("path")
        return toc | {"video_url": f"/video/{media_id}"}

    @app.get("/summaries")
    def search_summaries(
        q: Annotated[str, Query(min_length=1, max_length=2000, description="Text query")],
        k: K = 20,
        offset: OFFSET = 0,
        media: MEDIA = None,
        kind: KIND = None,
        start_s: START = None,
        end_s: END = None,
    ):
        """Chapters whose title and summary match `q` (by meaning and by words), best first, each saying why."""
        found = client.search_summaries(q, k, offset=offset, filters=filters(media, kind, start_s, end_s, None))
        results = [
            {key: value for key, value in hit.items() if key not in ("media_path", "thumbnail_path")}
            | {
                "video_url": f"/video/{hit['media_id']}",
                "thumbnail_url": f"/frame/{hit['best_frame_id']}" if hit["best_frame_id"] is not None else None,
            }
            for hit in found.to_dicts()
        ]
        return {"results": results, "k": k, "offset": offset}

    @app.get("/similar/frame/{frame_id}")
    def similar_frame(
        frame_id: FRAME_ID,
        k: K = 20,
        offset: OFFSET = 0,
        media: MEDIA = None,
        kind: KIND = None,
        cluster_id: CLUSTER = None,
    ):
        """Frames most like a stored frame."""
        hits = client.similar_frames(frame_id, k, offset=offset, filters=filters(media, kind, None, None, cluster_id))
        return {"results": _public_hits(hits.to_dicts()), "k": k, "offset": offset}

    @app.get("/similar/video/{media_id}")
    def similar_video(media_id: MEDIA_ID, k: K = 10, offset: OFFSET = 0):
        """Videos (and photos) most like a file, from its shot vectors (frame vectors without shots)."""
        videos = client.similar_videos(media_id, k, offset=offset).to_dicts()
        results = [
            {key: value for key, value in hit.items() if key != "media_path"}
            | {"thumbnail_url": f"/frame/{hit['best_frame_id']}", "video_url": f"/video/{hit['media_id']}"}
            for hit in videos
        ]
        return {"results": results, "k": k, "offset": offset}

    # -- files ---------------------------------------------------------------------------------------

    @app.get("/frame/{frame_id}", response_class=FileResponse, responses={200: {"content": {"image/jpeg": {}}}})
    def frame(frame_id: FRAME_ID):
        """The frame's JPEG thumbnail."""
        table = client.frames.get()
        row = table.rows_of(np.array([frame_id]))[0]
        if row < 0:
            row = client.frames.refresh().rows_of(np.array([frame_id]))[0]
            table = client.frames.get()
        if row < 0:
            raise UnknownIdError(f"unknown frame id {frame_id}")
        return _file(warehouse.root / table.thumbnail_path[row], warehouse.root, "image/jpeg", f"frame {frame_id}")

    @app.get("/face/{face_id}", response_class=FileResponse, responses={200: {"content": {"image/jpeg": {}}}})
    def face(face_id: FACE_ID):
        """The face crop's JPEG."""
        rows = catalog.query(warehouse, "SELECT crop_path FROM faces WHERE face_id = ?", [face_id]).to_pylist()
        if not rows:
            raise UnknownIdError(f"unknown face id {face_id}")
        return _file(warehouse.root / rows[0]["crop_path"], warehouse.root, "image/jpeg", f"face {face_id}")

    @app.get("/video/{media_id}", response_class=FileResponse)
    def video(
        media_id: MEDIA_ID,
        original: Annotated[bool, Query(description="The file as it is, even if a browser cannot play it")] = False,
    ):
        """The media file, or for a video a browser cannot decode (MPEG-4 Part 2, Motion-JPEG, …) a WebM
        playback copy with the same timing, made on first request. HTTP Range requests are answered (206)
        so a browser can seek."""
        rows = catalog.query(warehouse, "SELECT * FROM media WHERE media_id = ?", [media_id]).to_pylist()
        if not rows:
            raise UnknownIdError(f"unknown media id {media_id}")
        media = rows[0]
        source = Path(media["path"])
        if not _inside(source, warehouse.media_root):
            log.warning(
                "refused to serve media %s: %s is outside the media root %s", media_id, source, warehouse.media_root
            )
            raise HTTPException(404, f"media {media_id} is not available")
        if original or browser_can_play(media):
            return _file(
                source,
                warehouse.media_root,
                _MEDIA_TYPES.get(source.suffix.lower(), "application/octet-stream"),
                f"media {media_id}",
            )
        if not source.is_file():
            raise HTTPException(404, f"media {media_id}: the file is gone")
        try:
            path, media_type = playable_path(warehouse, media)
        except PlaybackError as exc:
            raise HTTPException(415, f"media {media_id}: {exc}") from exc
        return _file(path, warehouse.root, media_type, f"media {media_id}")

    # -- clusters ------------------------------------------------------------------------------------

    @app.get("/clusters")
    def clusters(level: Annotated[str | None, Query(pattern="^(scene|character)$")] = None):
        """Clusters with size, name and representative frames, and the noise bucket."""
        rows = catalog.query(
            warehouse,
            "SELECT cluster_id, level, parent_id, name, size, media_count, cohesion, representative_frame_id, "
            "representative_frame_ids FROM clusters WHERE ? IS NULL OR level = ? "
            "ORDER BY level DESC, size DESC, cluster_id",
            [level, level],
        ).to_pylist()
        noise = catalog.query(
            warehouse,
            "SELECT cm.member_kind, cm.member_id, cm.frame_id, cm.media_id, m.partition_key, cm.nearest_cluster_id, "
            "cm.similarity, s.start_s, s.end_s FROM cluster_members cm JOIN media m USING (media_id) "
            "LEFT JOIN shots s ON s.shot_id = cm.member_id AND cm.member_kind = 'shot' "
            "WHERE cm.is_noise AND (? IS NULL OR cm.level = ?) ORDER BY cm.member_kind DESC, cm.member_id",
            [level, level],
        ).to_pylist()
        return {"clusters": rows, "noise": {"size": len(noise), "members": [_scored_member(m) for m in noise[:500]]}}

    @app.get("/clusters/{cluster_id}")
    def cluster(cluster_id: CLUSTER_ID):
        """One cluster and its members (shots with their times, or faces)."""
        rows = catalog.query(
            warehouse, "SELECT * EXCLUDE (run_id) FROM clusters WHERE cluster_id = ?", [cluster_id]
        ).to_pylist()
        if not rows:
            raise UnknownIdError(f"unknown cluster id {cluster_id}")
        members = catalog.query(
            warehouse,
            "SELECT cm.member_kind, cm.member_id, cm.frame_id, cm.media_id, m.partition_key, cm.similarity, cm.pinned, "
            "s.start_s, s.end_s FROM cluster_members cm JOIN media m USING (media_id) "
            "LEFT JOIN shots s ON s.shot_id = cm.shot_id WHERE cm.cluster_id = ? "
            "ORDER BY cm.similarity DESC NULLS LAST, cm.member_id",
            [cluster_id],
        ).to_pylist()
        return rows[0] | {"clustered_at": str(rows[0]["clustered_at"]), "members": [_scored_member(m) for m in members]}

    @app.post("/feedback/move", status_code=201)
    def move(request: MoveRequest, source: SOURCE):
        """A person puts a shot into a scene cluster (or a face into a character cluster), e.g. dragging it
        out of the noise bucket: a `move` feedback row, honoured as a pin at the next clustering.
        `cluster_id: null` takes the pin back."""
        return _public_row(
            record_move(warehouse, request.member_kind, request.member_id, request.cluster_id, source=source)
        )

    @app.post("/feedback/merge", status_code=201)
    def merge(request: MergeRequest, source: SOURCE):
        """Cluster `from_cluster_id` is really `into_cluster_id`: one row (and pin) per member it has."""
        rows = record_merge(warehouse, request.into_cluster_id, request.from_cluster_id, source=source)
        return {"rows": [_public_row(r) for r in rows]}

    @app.post("/feedback/split", status_code=201)
    def split(request: SplitRequest, source: SOURCE):
        """These members of a cluster form a cluster of their own (a new id)."""
        new_id, rows = record_split(
            warehouse, request.cluster_id, request.member_kind, request.member_ids, source=source
        )
        return {"cluster_id": new_id, "rows": [_public_row(r) for r in rows]}

    @app.post("/feedback/pair", status_code=201)
    def pair(request: PairRequest, source: SOURCE):
        """Two shots, faces or frames show the same scene or person (`same: true`), or not."""
        return _public_row(
            record_pair(
                warehouse,
                request.member_kind,
                request.member_id,
                request.other_member_id,
                same=request.same,
                source=source,
            )
        )

    @app.post("/feedback/relevance", status_code=201)
    def relevance(request: RelevanceRequest, source: SOURCE):
        """Frame `frame_id` is (or is not) a good result for `query`."""
        return _public_row(
            record_relevance(warehouse, request.query, request.frame_id, relevant=request.relevant, source=source)
        )

    @app.get("/feedback")
    def feedback_list(
        after_seq: Annotated[int | None, Query(ge=0, le=MAX_ID, description="Only rows written after this seq")] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ):
        """Feedback rows in the order they were written."""
        rows = feedback_rows(warehouse, after_seq=after_seq).slice(0, limit).to_pylist()
        return {"rows": [_public_row(r) for r in rows]}

    # The API's own 422s say what is wrong in a sentence ({"detail": "…"}: SearchError, FeedbackError, uploads),
    # FastAPI's parameter checks in a list; the schema FastAPI writes knows only the list, so it says both.
    def openapi() -> dict:
        if app.openapi_schema is None:
            errors = FastAPI.openapi(app)["components"]["schemas"]["HTTPValidationError"]["properties"]
            errors["detail"] = {"anyOf": [errors["detail"], {"type": "string"}], "title": "Detail"}
        return app.openapi_schema

    app.openapi = openapi

    install_access(app, access or Access.in_process())  # last: it checks that every route has a role
    return app


_MEDIA_TYPES = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".mkv": "video/x-matroska",
    ".webm": "video/webm",
    ".avi": "video/x-msvideo",
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}


def _file(path: Path, allowed_root: Path, media_type: str, what: str) -> FileResponse:
    if not _inside(path, allowed_root):
        log.warning("refused to serve %s: %s is outside %s", what, path, allowed_root)
        raise HTTPException(404, f"{what} is not available")
    if not path.is_file():
        raise HTTPException(404, f"{what}: the file is gone")
    return FileResponse(path, media_type=media_type)


def _public_hits(hits: list[dict]) -> list[dict]:
    """Hits as the API shows them: URLs instead of server paths."""
    return [
        {k: v for k, v in hit.items() if k not in ("thumbnail_path", "media_path")}
        | {"thumbnail_url": f"/frame/{hit['frame_id']}", "video_url": f"/video/{hit['media_id']}"}
        for hit in hits
    ]


def _scored_member(member: dict) -> dict:
    """A cluster member with `similarity` on the API's scale ([0, 1], see `search.cosine_to_similarity`) and
    the raw `cosine` to its centroid (for noise: to the nearest centroid) beside it."""
    cosine = member.pop("similarity", None)
    return member | {"cosine": cosine, "similarity": None if cosine is None else float(cosine_to_similarity(cosine))}


def _public_row(row: dict) -> dict:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}


def _public_fused(moments: list[dict]) -> list[dict]:
    """Fused moments with URLs; an audio file's moment has no thumbnail."""
    return [
        {k: v for k, v in m.items() if k not in ("thumbnail_path", "media_path")}
        | {
            "thumbnail_url": f"/frame/{m['best_frame_id']}" if m["best_frame_id"] is not None else None,
            "video_url": f"/video/{m['media_id']}",
            "matched_words": sorted({w for reason in m["why"] for w in reason["words"]}),
        }
        for m in moments
    ]


def _public_moments(moments: list[dict]) -> list[dict]:
    return [
        {k: v for k, v in m.items() if k not in ("thumbnail_path", "media_path")}
        | {"thumbnail_url": f"/frame/{m['best_frame_id']}", "video_url": f"/video/{m['media_id']}"}
        for m in moments
    ]


def serve(warehouse: Warehouse, host: str = "127.0.0.1", port: int = 8000, *, access: Access | None = None) -> None:
    """Serve the API on `host:port` with `access` (default: `serving_access`, which refuses a network
    address without tokens)."""
    import uvicorn

    if access is None:
        access, notes = serving_access(warehouse, host)
        for note in notes:
            log.warning("%s", note)
    app = create_app(warehouse, prepare_playback=True, access=access)
    # no startup or shutdown hooks: without the lifespan task, Ctrl-C stops the server without a traceback
    uvicorn.run(app, host=host, port=port, log_level="info", lifespan="off")
