"""A library made of chosen vectors: catalog rows and frame vectors for files that do not exist.

For tests and benchmarks of everything downstream of embedding (search, moments, clusters, the learning
loop) at sizes, or with a geometry, that real media cannot give offline.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from media_assets.ids import frame_id_for, media_id_for, segment_id_for, text_id_for
from media_assets.store import catalog
from media_assets.store.vectors import VectorStore
from media_assets.warehouse import Warehouse


def write_synthetic_library(
    warehouse: Warehouse,
    vectors_by_file: dict[str, np.ndarray],
    *,
    step_s: float = 1.0,
    kinds: dict[str, str] | None = None,
    model_id: str = "synthetic",
) -> dict[str, int]:
    """Catalog rows (`media`, `frames`) and `frame_vectors` for files that do not exist, from given vectors:
    file `key` gets one sampled frame per row of `vectors_by_file[key]`, `step_s` apart. For tests and
    benchmarks of everything downstream of embedding (search, moments, clusters) at sizes or with
    structure real media cannot give. Returns partition key → media_id."""
    now = datetime.now(UTC)
    store = VectorStore(warehouse)
    ids = {}
    for key, vectors in vectors_by_file.items():
        vectors = np.asarray(vectors, dtype=np.float32)
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        media_id = media_id_for(key)
        kind = (kinds or {}).get(key, "video")
        count = len(vectors)
        frame_ids = [frame_id_for(media_id, seq) for seq in range(count)]
        catalog.replace_partition(
            warehouse,
            "media",
            media_id,
            [
                {
                    "media_id": media_id,
                    "partition_key": key,
                    "path": str(warehouse.media_root / key),
                    "kind": kind,
                    "size_bytes": 0,
                    "mtime_ns": 0,
                    "container": "synthetic",
                    "codec": "synthetic",
                    "width": 640,
                    "height": 360,
                    "fps": 1.0 / step_s if kind == "video" else None,
                    "duration_s": count * step_s if kind == "video" else 0.0,
                    "frame_count": count,
                    "frames_sampled": count,
                    "duplicate_frames": 0,
                    "undecodable_frames": 0,
                    "sampling": f"fps={1.0 / step_s:g}" if kind == "video" else "image",
                    "run_id": "synthetic",
                    "ingested_at": now,
                }
            ],
        )
        catalog.replace_partition(
            warehouse,
            "frames",
            media_id,
            [
                {
                    "frame_id": frame_id,
                    "media_id": media_id,
                    "seq": seq,
                    "frame_index": seq,
                    "timestamp_s": seq * step_s,
                    "width": 640,
                    "height": 360,
                    "thumbnail_path": f"frames/{media_id}/{seq:06d}.jpg",
                    "phash": 0,
                    "sharpness": 100.0,
                    "change_score": 0.0,
                    "pixel_change": 0.0,
                    "is_duplicate": False,
                    "duplicate_of": None,
                    "run_id": "synthetic",
                }
                for seq, frame_id in enumerate(frame_ids)
            ],
        )
        store.replace_media(
            media_id, np.asarray(frame_ids, dtype=np.int64), vectors, model_id=model_id, run_id="synthetic"
        )
        ids[key] = media_id
    return ids


# -- words: transcripts and screen text ----------------------------------------------------------------

# Six talks on unrelated subjects: per file, timed transcript segments (start_s, end_s, text) and timed
# screen-text lines (start_s, end_s, line). Each holds words said and never shown, and lines shown and never
# said, so tests and `measure_fusion` know exactly which modality can find what.
SYNTHETIC_TALKS: dict[str, dict[str, list[tuple[float, float, str]]]] = {
    "talks/cooking.mp4": {
        "segments": [
            (0.0, 4.0, "Welcome back to the kitchen, today we are making a seafood paella."),
            (4.0, 8.0, "First we warm the olive oil in a wide shallow pan."),
            (8.0, 12.0, "Then the onions and the garlic go in until they are soft."),
            (12.0, 16.0, "Now a pinch of saffron, which gives the rice its golden colour."),
            (16.0, 20.0, "Add the rice and stir so every grain is coated with oil."),
            (20.0, 24.0, "Pour in the hot stock and do not stir it again."),
            (24.0, 28.0, "After fifteen minutes we lay the prawns and mussels on top."),
            (28.0, 32.0, "Let it rest under a towel before serving."),
        ],
        "screen": [
            (0.0, 8.0, "Seafood paella"),
            (0.0, 8.0, "Serves four"),
            (16.0, 24.0, "Bomba rice, 400 g"),
            (24.0, 32.0, "Chef's tip: never stir after the stock"),
        ],
    },
    "talks/astronomy.mp4": {
        "segments": [
            (0.0, 4.0, "Tonight we look at how stars are born inside clouds of gas."),
            (4.0, 8.0, "Gravity pulls the cloud together until the core heats up."),
            (8.0, 12.0, "When hydrogen starts to fuse, a new star begins to shine."),
            (12.0, 16.0, "Big stars burn quickly and may end as a supernova."),
            (16.0, 20.0, "What is left can collapse into a neutron star or a black hole."),
            (20.0, 24.0, "Our own sun is a quiet star in the middle of its life."),
            (24.0, 28.0, "Through a small telescope you can see the Orion nebula."),
            (28.0, 32.0, "Clear skies, and see you next week."),
        ],
        "screen": [
            (0.0, 8.0, "The life cycle of stars"),
            (8.0, 16.0, "Nuclear fusion: hydrogen to helium"),
            (16.0, 24.0, "Chandrasekhar limit 1.4 solar masses"),
            (24.0, 32.0, "Messier 42"),
        ],
    },
    "talks/football.mp4": {
        "segments": [
            (0.0, 4.0, "Good evening and welcome to the match of the season."),
            (4.0, 8.0, "The home side starts fast and presses high up the pitch."),
            (8.0, 12.0, "A long ball over the top and the striker is through on goal."),
            (12.0, 16.0, "He shoots and the keeper tips it over the bar."),
            (16.0, 20.0, "From the corner the defender heads it into the net."),
            (20.0, 24.0, "The referee checks the video and the goal stands."),
            (24.0, 28.0, "In the second half the visitors hit the post twice."),
            (28.0, 32.0, "The final whistle goes and the fans are singing."),
        ],
        "screen": [
            (0.0, 8.0, "Kick-off 20:00"),
            (16.0, 24.0, "GOAL 1-0"),
            (20.0, 24.0, "VAR check complete"),
            (28.0, 32.0, "Full time"),
        ],
    },
    "talks/finance.mp4": {
        "segments": [
            (0.0, 4.0, "Thank you all for joining the results call this morning."),
            (4.0, 8.0, "Sales grew eight percent compared with last year."),
            (8.0, 12.0, "Most of the growth came from our stores in Asia."),
            (12.0, 16.0, "Costs went up because of shipping and energy prices."),
            (16.0, 20.0, "We will keep paying the dividend at the same level."),
            (20.0, 24.0, "We expect next year to be harder for consumers."),
            (24.0, 28.0, "We are also buying back shares over the summer."),
            (28.0, 32.0, "Now I am happy to take your questions."),
        ],
        "screen": [
            (0.0, 8.0, "Q3 results"),
            (4.0, 12.0, "Revenue up 8% year on year"),
            (12.0, 20.0, "EBITDA margin 14.2%"),
            (20.0, 28.0, "Quarterly revenue forecast"),
        ],
    },
    "talks/gardening.mp4": {
        "segments": [
            (0.0, 4.0, "Spring is the best time to plan a vegetable bed."),
            (4.0, 8.0, "Dig in plenty of compost before you sow anything."),
            (8.0, 12.0, "Tomatoes need sun, so give them the south facing wall."),
            (12.0, 16.0, "Slugs love young lettuce, so check the leaves every evening."),
            (16.0, 20.0, "Water in the morning rather than at night."),
            (20.0, 24.0, "Pinch out the side shoots to get bigger fruit."),
            (24.0, 28.0, "By late summer you can pick beans every day."),
            (28.0, 32.0, "Happy gardening and see you next time."),
        ],
        "screen": [
            (0.0, 8.0, "Planning your vegetable patch"),
            (8.0, 16.0, "Full sun: 6+ hours"),
            (16.0, 24.0, "Drip irrigation saves water"),
            (24.0, 32.0, "Harvest calendar"),
        ],
    },
    "talks/programming.mp4": {
        "segments": [
            (0.0, 4.0, "In this lesson we write our first function in Python."),
            (4.0, 8.0, "A function takes arguments and returns a value."),
            (8.0, 12.0, "If something goes wrong we raise an exception with a clear message."),
            (12.0, 16.0, "Tests call the function and check what comes back."),
            (16.0, 20.0, "A loop repeats the same steps for every item in a list."),
            (20.0, 24.0, "Dictionaries look values up by their key very quickly."),
            (24.0, 28.0, "Finally we commit the code and push it to the server."),
            (28.0, 32.0, "Next time we look at classes."),
        ],
        "screen": [
            (0.0, 8.0, "def greet(name):"),
            (8.0, 16.0, "raise ValueError('empty name')"),
            (16.0, 24.0, "Big O notation"),
            (24.0, 32.0, "git push origin main"),
        ],
    },
}

# Queries with the one moment that answers them: (query, partition key, time inside the moment, how it can be
# found). 'said': only in the transcript; 'shown': only on screen.
SYNTHETIC_QUERIES: list[tuple[str, str, float, str]] = [
    ("saffron", "talks/cooking.mp4", 13.0, "said"),
    ("how to cook rice with seafood", "talks/cooking.mp4", 2.0, "said"),
    ("a supernova explosion", "talks/astronomy.mp4", 13.0, "said"),
    ("the goalkeeper saves a shot", "talks/football.mp4", 13.0, "said"),
    ("dividend", "talks/finance.mp4", 17.0, "said"),
    ("slugs eating lettuce", "talks/gardening.mp4", 13.0, "said"),
    ("handling errors with exceptions", "talks/programming.mp4", 9.0, "said"),
    ("Chandrasekhar limit", "talks/astronomy.mp4", 17.0, "shown"),
    ("quarterly revenue forecast", "talks/finance.mp4", 21.0, "shown"),
    ("drip irrigation", "talks/gardening.mp4", 17.0, "shown"),
    ("Big O notation", "talks/programming.mp4", 17.0, "shown"),
    ("VAR check", "talks/football.mp4", 21.0, "shown"),
]


def write_synthetic_text(
    warehouse: Warehouse,
    key: str,
    *,
    segments: list[tuple[float, float, str]] = (),
    screen: list[tuple[float, float, str]] = (),
    kind: str | None = None,
    duration_s: float | None = None,
    step_s: float = 1.0,
) -> int:
    """`transcript_segments` and `screen_text` rows for file `key` (its `media` row too when there is none
    yet: an audio file by default, `kind` and `duration_s` otherwise). Screen lines are read on the frame at
    (or before) their start time. Returns the media_id."""
    now = datetime.now(UTC)
    media_id = media_id_for(key)
    if catalog.read_partition(warehouse, "media", media_id) is None:
        end = max([e for _, e, _ in [*segments, *screen]] or [0.0])
        kind = kind or "audio"
        catalog.replace_partition(
            warehouse,
            "media",
            media_id,
            [
                {
                    "media_id": media_id,
                    "partition_key": key,
                    "path": str(warehouse.media_root / key),
                    "kind": kind,
                    "size_bytes": 0,
                    "mtime_ns": 0,
                    "container": "synthetic",
                    "codec": "synthetic",
                    "width": None if kind == "audio" else 640,
                    "height": None if kind == "audio" else 360,
                    "fps": None,
                    "duration_s": float(duration_s if duration_s is not None else end),
                    "frame_count": 0,
                    "frames_sampled": 0,
                    "duplicate_frames": 0,
                    "undecodable_frames": 0,
                    "sampling": "none",
                    "run_id": "synthetic",
                    "ingested_at": now,
                }
            ],
        )
    catalog.replace_partition(
        warehouse,
        "transcript_segments",
        media_id,
        [
            {
                "segment_id": segment_id_for(media_id, n),
                "media_id": media_id,
                "start_s": float(start),
                "end_s": float(end),
                "text": text,
                "language": "en",
                "avg_logprob": -0.2,
                "no_speech_prob": 0.01,
                "source": "asr",
                "model_id": "synthetic",
                "run_id": "synthetic",
            }
            for n, (start, end, text) in enumerate(sorted(segments))
        ],
    )
    catalog.replace_partition(
        warehouse,
        "screen_text",
        media_id,
        [
            {
                "text_id": text_id_for(media_id, n),
                "media_id": media_id,
                "frame_id": frame_id_for(media_id, int(start // step_s)),
                "start_s": float(start),
                "end_s": float(end),
                "text": line,
                "box": [0.1, 0.1 + 0.1 * n, 0.9, 0.1 + 0.1 * n, 0.9, 0.18 + 0.1 * n, 0.1, 0.18 + 0.1 * n],
                "score": 0.95,
                "model_id": "synthetic",
                "run_id": "synthetic",
            }
            for n, (start, end, line) in enumerate(screen)
        ],
    )
    return media_id


def write_synthetic_talks(
    warehouse: Warehouse,
    encoder,
    *,
    talks: dict[str, dict[str, list[tuple[float, float, str]]]] | None = None,
    frames: bool = True,
    clip_dim: int = 32,
    clip_model_id: str = "synthetic",
    seed: int = 0,
) -> dict[str, int]:
    """A library of talks (default `SYNTHETIC_TALKS`): with `frames`, one sampled frame a second with random
    vectors of `clip_dim` dimensions (`write_synthetic_library`; what a random-weight CLIP sees: nothing),
    else audio files; their transcripts and screen text; and their text vectors from `encoder` (a
    `models.text.TextEncoder`) through the text_vectors stage. Returns partition key → media_id."""
    from media_assets.stages.text_vectors import embed_texts

    talks = SYNTHETIC_TALKS if talks is None else talks
    rng = np.random.default_rng(seed)
    ids = {}
    if frames:
        duration = {key: max(e for _, e, _ in [*t["segments"], *t["screen"]]) for key, t in talks.items()}
        ids = write_synthetic_library(
            warehouse,
            {key: rng.standard_normal((int(round(d)), clip_dim)) for key, d in duration.items()},
            model_id=clip_model_id,
        )
    for key, talk in talks.items():
        ids[key] = write_synthetic_text(warehouse, key, segments=talk["segments"], screen=talk["screen"])
        embed_texts(warehouse, ids[key], encoder, run_id="synthetic")
    return ids


def _target_rank(moments, key: str, at_s: float) -> int | None:
    """0-based rank of the first moment of file `key` whose range holds `at_s` (None: not in the list)."""
    for rank, moment in enumerate(moments):
        if moment.partition_key == key and moment.start_s - 1e-6 <= at_s <= moment.end_s + 1e-6:
            return rank
    return None


def measure_fusion(
    client,
    queries: list[tuple[str, str, float, str]] | None = None,
    modes: tuple[str, ...] = ("balanced", "text_heavy", "vision_heavy", "speech", "screen_text", "keyword", "visual"),
    k: int = 10,
) -> dict[str, dict[str, float]]:
    """Hit@1 and MRR@k of each mode over queries with a known answer (default `SYNTHETIC_QUERIES`), and the
    same moments scored by weighted reciprocal-rank fusion instead ('rrf:<mode>', k = 60) for comparison;
    `noise_top`: the share of queries whose first moment matched in no modality (evidence < 0.5 in all)."""
    from media_assets.search import fusion

    queries = SYNTHETIC_QUERIES if queries is None else queries
    results: dict[str, dict[str, float]] = {}
    for mode in modes:
        ranks, rrf_ranks, noise = [], [], 0
        for query, key, at_s, _ in queries:
            moments = client.search(query, mode=mode, k=k)
            ranks.append(_target_rank(moments, key, at_s))
            noise += bool(len(moments)) and not moments[0].modalities
            if mode in fusion.BLENDS:
                # the same candidates and moments, scored Σ w / (60 + rank in the modality's own list)
                wide = client.search(query, mode=mode, k=1000)
                order: dict[str, list] = {}
                for moment in wide:
                    for reason in moment.why:
                        order.setdefault(reason.modality, []).append((-reason.evidence, id(moment)))
                position = {m: {ident: r for r, (_, ident) in enumerate(sorted(v))} for m, v in order.items()}
                weights = fusion.mode_weights(mode)
                rescored = sorted(
                    wide,
                    key=lambda m: -sum(weights[r.modality] / (60 + 1 + position[r.modality][id(m)]) for r in m.why),
                )
                rrf_ranks.append(_target_rank(rescored[:k], key, at_s))
        for name, found in ((mode, ranks), (f"rrf:{mode}", rrf_ranks)):
            if found:
                results[name] = {
                    "hit@1": float(np.mean([r == 0 for r in found])),
                    "mrr": float(np.mean([0.0 if r is None else 1.0 / (r + 1) for r in found])),
                }
        results[mode]["noise_top"] = noise / len(queries)
    return results


if __name__ == "__main__":  # python -m media_assets.demo.synthetic_library: the fusion measurement
    import sys
    import tempfile
    import time
    from pathlib import Path

    from media_assets.demo.random_clip import write_random_clip
    from media_assets.models.text import TextEncoder
    from media_assets.search.client import SearchClient

    seeds = [int(s) for s in sys.argv[1:]] or [0, 1, 2, 3, 4]
    encoder = TextEncoder.load(device="cpu")
    totals: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        clip = write_random_clip(Path(folder) / "clip", size="tiny")
        for seed in seeds:
            warehouse = Warehouse.at(Path(folder) / f"warehouse-{seed}").ensure()
            write_synthetic_talks(warehouse, encoder, clip_model_id=str(clip), seed=seed)
            client = SearchClient(warehouse)
            started = time.perf_counter()
            for name, metrics in measure_fusion(client).items():
                totals.setdefault(name, []).append(metrics)
            print(f"seed {seed}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    for name, runs in totals.items():
        means = {metric: np.mean([run[metric] for run in runs]) for metric in runs[0]}
        print(f"{name:18s} " + "  ".join(f"{metric} {value:.3f}" for metric, value in means.items()))
