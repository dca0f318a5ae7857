"""The child side of the fault-injection tests (test_faults.py): one stage run per process, killed on purpose.

`python fault_targets.py [CLIP model]` is a zygote: it imports the stages once (torch, LanceDB, DuckDB, the
compiled HNSW code) and loads the model, then reads one JSON request per line on stdin and forks a child for
each, so a trial costs a fork, not a fresh interpreter. A request names the stage, the warehouse and the
stage's arguments, and how the child may end early:
- `kill_at_write: N`: an audit hook counts the child's file-system writes (opening a file to write, rename and
  replace, unlink, mkdir, rmdir, rmtree) and the child SIGKILLs itself right before the Nth;
- `fsize_limit: bytes`: RLIMIT_FSIZE for the child with SIGXFSZ ignored, so a write past it fails with EFBIG
  (what a full disk looks like to the writer, without a small filesystem);
- neither: it runs to the end (or until the parent SIGKILLs it after a delay of its choosing).

Lines on stdout, one JSON object each: `{"started": pid}` from the child once the stage begins,
`{"writing": pid}` at its first write, then `{"done": {...}}` (with the writes it made and when) or
`{"error": message, "type": name}` from the child, then
`{"exit": pid, "code": c, "signal": s}` from the zygote when the child is gone.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time
from pathlib import Path

import numpy as np

from media_assets.media.decoding import Sampling
from media_assets.media.discovery import stat_media_file
from media_assets.models.clip import ClipEncoder
from media_assets.models.hnsw import HNSWIndex
from media_assets.stages import adapter as adapter_stage
from media_assets.stages.clusters import update_clusters
from media_assets.stages.frame_embeddings import embed_frames
from media_assets.stages.frames import FrameSettings, extract_frames
from media_assets.stages.hnsw_index import update_frame_index
from media_assets.warehouse import Warehouse

WRITE_EVENTS = {"os.rename", "os.remove", "os.rmdir", "os.mkdir", "shutil.rmtree", "os.truncate", "os.link"}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _emit(message: dict) -> None:
    os.write(1, (json.dumps(message) + "\n").encode())


def _is_write(event: str, args: tuple) -> bool:
    if event in WRITE_EVENTS:
        return True
    if event == "open":
        _, mode, flags = args
        return bool(set(mode or "") & set("wax+")) or bool((flags or 0) & _WRITE_FLAGS)
    return False


class WriteCounter:
    """Counts write operations from the moment it is installed; SIGKILLs the process before the `kill_at`-th."""

    def __init__(self, kill_at: int | None):
        self.kill_at = kill_at
        self.count = 0
        self.started = time.perf_counter()
        self.seen: list[tuple[float, str, str]] = []  # (seconds since the start, event, its first argument)

    def __call__(self, event: str, args: tuple) -> None:
        if _is_write(event, args):
            self.count += 1
            if self.kill_at is not None and self.count >= self.kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            if self.count == 1:
                _emit({"writing": os.getpid()})
            self.seen.append((round(time.perf_counter() - self.started, 4), event, str(args[0]) if args else ""))


def warehouse_of(request: dict) -> Warehouse:
    root = Path(request["warehouse"])
    return Warehouse.at(root, media_root=root / "media", vectors_uri=str(root / "vectors"))


def prepare(request: dict):
    """What the stage needs loaded before it starts (not part of the timed, killable run); returns its call."""
    wh, args, run_id = warehouse_of(request), request.get("args", {}), request.get("run_id", "faults")
    stage = request["stage"]
    if stage == "frames":
        media_file = stat_media_file(wh.media_root / args["key"], wh.media_root)
        settings = FrameSettings(Sampling(fps=args.get("fps", 1.0)), thumbnail_max_side=args.get("thumbnail", 96))
        return lambda: {"kept": extract_frames(wh, media_file, settings, run_id=run_id).kept}
    if stage == "frame_embeddings":
        encoder = ClipEncoder.load(args["model"], device="cpu")
        return lambda: {"embedded": embed_frames(wh, args["media_id"], encoder, run_id=run_id).embedded}
    if stage == "hnsw_index":
        return lambda: {"mode": update_frame_index(wh).mode}
    if stage == "clusters":
        return lambda: {"clusters": len(update_clusters(wh, run_id=run_id).clusters)}
    if stage == "promotion":  # the promoted_adapter asset, then adapted_vectors (what learn_from_feedback runs)

        def promote():
            adapter_stage.promote(wh, args["version"], reason="passed its gate", run_id=run_id)
            return {"adapted": adapter_stage.write_adapted_vectors(wh, run_id=run_id)}

        return promote
    if stage == "dagster_frames":  # the `frames` asset of one partition through Dagster (imported here only)
        return dagster_frames(wh, args["key"], {"sample_fps": args.get("fps", 1.0), "thumbnail_max_side": 96})
    raise ValueError(f"unknown stage {stage!r}")


def dagster_frames(wh: Warehouse, key: str, config: dict):
    from dagster import DagsterEventType, DagsterInstance, materialize

    from media_assets.defs.media import frames
    from media_assets.defs.partitions import media_files
    from media_assets.defs.resources import WarehouseResource

    instance = DagsterInstance.ephemeral()  # in memory: the limit applies to the warehouse's files alone
    instance.add_dynamic_partitions(media_files.name, [key])
    resource = WarehouseResource(root=str(wh.root), media_root=str(wh.media_root), vectors_uri=wh.vectors_uri)

    def run() -> dict:
        result = materialize(
            [frames],
            partition_key=key,
            instance=instance,
            resources={"warehouse": resource},
            run_config={"ops": {"frames": {"config": config}}},
            raise_on_error=False,
        )
        failures = [e.event_specific_data for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
        return {"success": result.success, "failures": [_errors(f.error) for f in failures]}

    return run


def _errors(error) -> list[str]:
    """A Dagster error and its causes, as 'ClassName: message' lines (the step's own error wraps the asset's)."""
    chain = []
    while error is not None:
        chain.append(f"{error.cls_name}: {error.message.strip()}")
        error = error.cause
    return chain


def child(request: dict) -> None:
    try:
        begun = time.perf_counter()
        run = prepare(request)
        limit = request.get("fsize_limit")
        if limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        counter = WriteCounter(request.get("kill_at_write"))
        sys.addaudithook(counter)
        _emit({"started": os.getpid(), "prepared_s": round(time.perf_counter() - begun, 3)})
        started = time.perf_counter()
        result = run()
        _emit(
            {"done": result | {"writes": counter.count, "seconds": time.perf_counter() - started, "seen": counter.seen}}
        )
        code = 0
    except BaseException as exc:  # reported to the parent, which decides whether it was expected
        _emit({"error": str(exc), "type": type(exc).__name__})
        code = 1
    os._exit(code)


def warm_up(clip_model: str | None) -> None:
    """Compile the HNSW code and load the CLIP model once here, so that no child spends its time on them."""
    if clip_model:
        ClipEncoder.load(clip_model, device="cpu")
    rng = np.random.default_rng(0)
    index = HNSWIndex(8, M=4, ef_construction=16)
    index.add(rng.standard_normal((64, 8)).astype(np.float32), np.arange(64))
    index.search(rng.standard_normal(8).astype(np.float32), k=4)
    index.delete(np.arange(8))
    index.compact()


def serve(clip_model: str | None = None) -> None:
    warm_up(clip_model)
    _emit({"ready": os.getpid()})
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            child(request)
        _, status = os.waitpid(pid, 0)
        _emit(
            {
                "exit": pid,
                "code": os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else None,
                "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            }
        )


if __name__ == "__main__":  # python fault_targets.py [CLIP model to load once]
    serve(*sys.argv[1:2])
