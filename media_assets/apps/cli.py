"""`media-assets`: build, search and inspect a warehouse from the command line.

Every command takes `--warehouse DIR` (default: $MEDIA_ASSETS_WAREHOUSE or ./warehouse). Errors print one
line starting with `error:` and exit with status 1.
"""

from __future__ import annotations

import json
import logging
import sys
from functools import wraps
from pathlib import Path

import click

from media_assets.warehouse import Warehouse

warehouse_option = click.option(
    "--warehouse",
    "warehouse_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Warehouse folder (default: $MEDIA_ASSETS_WAREHOUSE or ./warehouse).",
)
model_option = click.option(
    "--clip-model",
    default="",
    help="CLIP model id or local folder (default: $MEDIA_ASSETS_CLIP_MODEL or openai/clip-vit-base-patch32).",
)


def _friendly_errors(fn):
    """Known failures become one line on stderr and exit status 1, not a traceback."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        import duckdb

        from media_assets.errors import MediaReadError, ModelLoadError
        from media_assets.search.client import SearchError

        try:
            return fn(*args, **kwargs)
        except (SearchError, MediaReadError, ModelLoadError, duckdb.Error, ValueError, OSError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log more (the library's INFO messages).")
@click.version_option(package_name="media-assets")
def main(verbose: bool) -> None:
    """A media warehouse: frames, CLIP vectors and metadata, built by Dagster."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not verbose:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def _ingest(
    warehouse: Warehouse, *, clip_model: str, device: str, batch_size: int, frames_config: dict, force: bool
) -> int:
    from tqdm import tqdm

    from media_assets.defs.runner import ingest

    bar: tqdm | None = None

    def on_start(plan) -> None:
        nonlocal bar
        click.echo(
            f"media root {warehouse.media_root}: {len(plan.files)} files, {len(plan.to_run)} to ingest, "
            f"{len(plan.up_to_date)} up to date, {len(plan.deleted)} removed"
        )
        bar = tqdm(total=len(plan.to_run), unit="file", disable=not plan.to_run, dynamic_ncols=True)

    def on_file(media_file, ok: bool, reason: str) -> None:
        bar.set_postfix_str(media_file.partition_key[-40:])
        bar.update(1)
        if not ok:
            bar.write(f"failed: {media_file.partition_key}: {reason}")

    report = ingest(
        warehouse,
        clip_model=clip_model,
        device=device,
        batch_size=batch_size,
        frames_config=frames_config,
        force=force,
        on_start=on_start,
        on_file=on_file,
    )
    if bar is not None:
        bar.close()
    click.echo(
        f"ingested {len(report.succeeded)} files, {len(report.failed)} failed, "
        f"{len(report.plan.up_to_date)} already up to date ({report.elapsed_s:.1f}s); HNSW index: {report.index}; "
        f"clusters: {report.clusters}"
    )
    _print_status(warehouse)
    return 1 if report.failed else 0


def _frames_config(fps: float | None, every_n_frames: int | None, thumbnail_size: int | None) -> dict:
    config = {}
    if fps is not None:
        config["sample_fps"] = fps
    if every_n_frames is not None:
        config["every_n_frames"] = every_n_frames
    if thumbnail_size is not None:
        config["thumbnail_max_side"] = thumbnail_size
    return config


ingest_options = [
    model_option,
    click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N"),
    click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1, 4096)),
    click.option(
        "--fps",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        help="Frames sampled per second (default 1).",
    ),
    click.option(
        "--every-n-frames",
        type=click.IntRange(min=1),
        default=None,
        help="Keep every Nth frame instead of sampling by time.",
    ),
    click.option(
        "--thumbnail-size",
        type=click.IntRange(min=16),
        default=None,
        help="Longest thumbnail side in px (default 512).",
    ),
    click.option("--force", is_flag=True, help="Re-ingest files that are up to date too."),
]


def _with(options):
    def decorate(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


@main.command()
@warehouse_option
@click.option(
    "--media",
    "media_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Media folder to ingest (remembered in the warehouse's settings.json; default <warehouse>/media).",
)
@_with(ingest_options)
@_friendly_errors
def ingest(
    warehouse_dir, media_dir, clip_model, device, batch_size, fps, every_n_frames, thumbnail_size, force
) -> None:
    """Register media files as Dagster partitions and materialize what is missing or stale."""
    warehouse = Warehouse.at(warehouse_dir, media_root=media_dir).ensure()
    if media_dir is not None:
        warehouse.remember_media_root()
    status = _ingest(
        warehouse,
        clip_model=clip_model,
        device=device,
        batch_size=batch_size,
        frames_config=_frames_config(fps, every_n_frames, thumbnail_size),
        force=force,
    )
    sys.exit(status)


@main.command()
@warehouse_option
@_with(ingest_options)
@_friendly_errors
def demo(warehouse_dir, clip_model, device, batch_size, fps, every_n_frames, thumbnail_size, force) -> None:
    """Write a small demo library into <warehouse>/media and build it (sampled at 4 frames/s unless
    --fps or --every-n-frames says otherwise: its shots are 2-3 s long)."""
    from media_assets.demo.library import DEMO_SAMPLE_FPS, write_demo_library

    warehouse = Warehouse.at(warehouse_dir).ensure()
    truth = write_demo_library(warehouse.media_root)
    click.echo(f"demo library in {warehouse.media_root} (ground truth: {truth.name})")
    if fps is None and every_n_frames is None:
        fps = DEMO_SAMPLE_FPS
    status = _ingest(
        warehouse,
        clip_model=clip_model,
        device=device,
        batch_size=batch_size,
        frames_config=_frames_config(fps, every_n_frames, thumbnail_size),
        force=force,
    )
    if status == 0:
        click.echo('next: media-assets search "a cat"   |   media-assets sql "SELECT * FROM media"   |   dagster dev')
    sys.exit(status)


@main.command()
@warehouse_option
@click.argument("query", required=False)
@click.option("-k", "k", default=10, show_default=True, type=int, help="How many frames to return.")
@click.option(
    "--image", type=click.Path(path_type=Path), default=None, help="Search with an image file instead of text."
)
@click.option("--similar-to", "frame_id", type=int, default=None, help="Frames similar to this frame id.")
@click.option(
    "--mode",
    type=click.Choice(["balanced", "text_heavy", "vision_heavy", "speech", "screen_text", "keyword", "visual"]),
    default=None,
    help="Search QUERY in what is seen, said and shown: moments that say why they matched (default: frames).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@_friendly_errors
def search(warehouse_dir, query, k, image, frame_id, mode, as_json) -> None:
    """Find frames by text (QUERY), by --image, or --similar-to a frame; with --mode, moments of what is seen,
    said and shown."""
    from media_assets.search.client import SearchClient, SearchError

    given = [x is not None for x in (query, image, frame_id)]
    if sum(given) != 1:
        raise SearchError("give exactly one of QUERY, --image PATH or --similar-to FRAME_ID")
    client = SearchClient(_existing(warehouse_dir))
    if mode is not None:
        if query is None:
            raise SearchError("--mode searches a text QUERY")
        header = f"{'similarity':>10}  {'from':>8}  {'to':>8}  media / why"
        _print_results(client.search(query, mode=mode, k=k), as_json, header, _print_moment)
        return
    if query is not None:
        hits = client.search_text(query, k)
    elif image is not None:
        hits = client.search_image(image, k)
    else:
        hits = client.similar_frames(frame_id, k)
    _print_results(hits, as_json, f"{'similarity':>10}  {'time':>8}  {'frame_id':>16}  media", _print_hit)


def _print_results(results, as_json: bool, header: str, print_row) -> None:
    """Search results as JSON lines, or a header and one `print_row(result)` each."""
    if as_json:
        for row in results.to_dicts():
            click.echo(json.dumps(row))
        return
    if not len(results):
        click.echo("no results (is the warehouse built? try: media-assets status)")
        return
    click.echo(header)
    for result in results:
        print_row(result)


def _print_hit(hit) -> None:
    click.echo(f"{hit.similarity:10.4f}  {_clock(hit.timestamp_s):>8}  {hit.frame_id:16d}  {hit.partition_key}")


def _print_moment(moment) -> None:
    click.echo(
        f"{moment.similarity:10.4f}  {_clock(moment.start_s):>8}  {_clock(moment.end_s):>8}  {moment.partition_key}"
    )
    for reason in moment.why[:3]:
        said = reason.marked.replace("\n", " / ") if reason.marked else f"seen: similarity {reason.similarity:.3f}"
        click.echo(f"{'':>32}{reason.modality:>12} {_clock(reason.start_s):>8}  {said[:100]}")


def _clock(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:04.1f}" if hours else f"{minutes}:{secs:04.1f}"


def _existing(warehouse_dir) -> Warehouse:
    warehouse = Warehouse.at(warehouse_dir)
    if not warehouse.root.is_dir():
        raise ValueError(
            f"no warehouse at {warehouse.root} (build one with: media-assets demo, or media-assets ingest)"
        )
    return warehouse


@main.command()
@warehouse_option
@click.argument("statement")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV instead of a table.")
@click.option(
    "--max-rows", default=100, show_default=True, type=click.IntRange(min=1), help="Rows shown in table output."
)
@_friendly_errors
def sql(warehouse_dir, statement, as_csv, max_rows) -> None:
    """Run SQL on the catalog: media, frames, shots, keyframes, faces, clusters, cluster_members, ... and
    the LanceDB tables frame_vectors, shot_vectors, face_vectors."""
    from media_assets.store.sql import open_catalog

    con = open_catalog(_existing(warehouse_dir), with_vectors=True)
    relation = con.sql(statement)
    if relation is None:
        click.echo("ok")
        return
    if as_csv:
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(relation.columns)
        writer.writerows(relation.fetchall())
        return
    relation.show(max_rows=max_rows, max_width=200)


def _print_status(warehouse: Warehouse) -> None:
    from media_assets.search.index import IndexReader
    from media_assets.store import catalog
    from media_assets.store.text_vectors import TextVectorStore
    from media_assets.store.vectors import VectorStore

    counts = catalog.query(
        warehouse,
        """
        SELECT (SELECT count(*) FROM media) AS media,
               (SELECT count(*) FROM media WHERE kind = 'video') AS videos,
               (SELECT count(*) FROM media WHERE kind = 'image') AS images,
               (SELECT count(*) FROM media WHERE kind = 'audio') AS audio,
               (SELECT count(*) FROM transcript_segments) AS segments,
               (SELECT count(DISTINCT media_id) FROM transcript_segments) AS transcribed,
               (SELECT count(*) FROM transcript_words) AS words,
               (SELECT count(*) FROM screen_text) AS screen_lines,
               (SELECT count(DISTINCT media_id) FROM screen_text) AS with_screen_text,
               (SELECT count(*) FROM chapters) AS chapters,
               (SELECT count(DISTINCT media_id) FROM chapters) AS with_chapters,
               (SELECT count(*) FROM frames) AS frames,
               (SELECT count(*) FROM frames WHERE is_duplicate) AS duplicates,
               (SELECT coalesce(sum(undecodable_frames), 0) FROM media) AS undecodable,
               (SELECT count(*) FROM ingest_errors) AS errors,
               (SELECT count(*) FROM shots) AS shots,
               (SELECT count(*) FROM shots WHERE kind = 'static') AS static_shots,
               (SELECT count(*) FROM keyframes) AS keyframes,
               (SELECT count(*) FROM faces) AS faces,
               (SELECT count(*) FROM clusters WHERE level = 'scene') AS scenes,
               (SELECT count(*) FROM clusters WHERE level = 'character') AS characters,
               (SELECT count(*) FROM cluster_members WHERE is_noise AND member_kind = 'shot') AS noise_shots,
               (SELECT count(*) FROM cluster_members WHERE is_noise AND member_kind = 'face') AS noise_faces
        """,
    ).to_pylist()[0]
    store = VectorStore(warehouse)
    click.echo(f"warehouse {warehouse.root}")
    click.echo(
        f"  media          {counts['media']:>8}  ({counts['videos']} videos, {counts['images']} images, "
        f"{counts['audio']} audio)"
    )
    click.echo(
        f"  frames         {counts['frames']:>8}  ({counts['duplicates']} near-duplicates, "
        f"{counts['undecodable']} undecodable skipped)"
    )
    click.echo(f"  frame_vectors  {store.count():>8}  (model: {', '.join(store.model_ids()) or 'none'})")
    index, state = IndexReader(warehouse).get()
    click.echo(f"  hnsw index     {len(index) if index is not None else '-':>8}  ({state})")
    click.echo(
        f"  shots          {counts['shots']:>8}  ({counts['static_shots']} static, "
        f"{counts['shots'] - counts['static_shots']} dynamic; {counts['keyframes']} keyframes)"
    )
    click.echo(f"  faces          {counts['faces']:>8}")
    click.echo(
        f"  transcripts    {counts['segments']:>8}  segments of {counts['transcribed']} files "
        f"({counts['words']} timed words)"
    )
    click.echo(f"  screen_text    {counts['screen_lines']:>8}  lines on {counts['with_screen_text']} files")
    click.echo(f"  chapters       {counts['chapters']:>8}  of {counts['with_chapters']} files")
    text_store = TextVectorStore(warehouse)
    click.echo(f"  text_vectors   {text_store.count():>8}  (model: {', '.join(text_store.model_ids()) or 'none'})")
    click.echo(
        f"  clusters       {counts['scenes'] + counts['characters']:>8}  "
        f"({counts['scenes']} scene, {counts['characters']} character; "
        f"noise bucket: {counts['noise_shots']} shots, {counts['noise_faces']} faces)"
    )
    from media_assets.store.adapters import current_version, serving_store

    adapter, feedback_rows = (
        current_version(warehouse),
        catalog.query(warehouse, "SELECT count(*) AS n FROM feedback").to_pylist()[0]["n"],
    )
    serving = serving_store(warehouse).name
    click.echo(
        f"  feedback       {feedback_rows:>8}  "
        f"(adapter in use: {f'version {adapter}' if adapter else 'none'}; search reads {serving})"
    )
    click.echo(f"  ingest_errors  {counts['errors']:>8}")
    errors = catalog.query(
        warehouse, "SELECT partition_key, stage, message FROM ingest_errors ORDER BY partition_key"
    ).to_pylist()
    for row in errors:
        click.echo(f"    failed: {row['partition_key']} [{row['stage']}] {row['message']}")


@main.command()
@warehouse_option
@_friendly_errors
def status(warehouse_dir) -> None:
    """Counts per table and the media files whose ingest failed."""
    _print_status(_existing(warehouse_dir))


@main.command()
@warehouse_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--repair", is_flag=True, help="Request the runs that repair the problems (through Dagster), then verify again."
)
@_friendly_errors
def verify(warehouse_dir, as_json, repair) -> None:
    """Check that the catalog, the vectors, the thumbnails, the index and the adapter registry agree; each
    problem is printed with its partition and what to re-materialize. Exit status 1 when there are problems."""
    from media_assets.stages.verify import verify_warehouse

    warehouse = _existing(warehouse_dir)
    report = verify_warehouse(warehouse)
    if not repair or not report.repairs():
        if as_json:
            click.echo(json.dumps(report.to_dict(), indent=1))
        else:
            _print_verify(report)
        sys.exit(0 if report.clean else 1)
    from media_assets.defs.runner import repair as request_repairs

    if not as_json:
        _print_verify(report)
        click.echo("repairing:")
    lines = request_repairs(warehouse, report, on_line=None if as_json else lambda line: click.echo(f"  {line}"))
    after = verify_warehouse(warehouse)
    if as_json:
        click.echo(json.dumps({"before": report.to_dict(), "repairs": lines, **after.to_dict()}, indent=1))
    else:
        click.echo("after the repair:")
        _print_verify(after)
    sys.exit(0 if after.clean else 1)


def _print_verify(report) -> None:
    """A summary line, then each problem on a line of its own under its partition."""
    c = report.counts
    click.echo(
        f"{c.get('media', 0)} media files, {c.get('frames', 0)} frames ({c.get('kept_frames', 0)} kept), "
        f"{c.get('frame_vectors', 0)} frame vectors, {c.get('shots', 0)} shots, {c.get('faces', 0)} faces, "
        f"{c.get('text_vectors', 0)} text vectors, {c.get('catalog_files', 0)} catalog files, "
        f"index {c.get('index_live', '-')} vectors, adapter {c.get('adapter_version') or 'none'} "
        f"({report.elapsed_s:.2f}s)"
    )
    if report.clean:
        click.echo("clean: the catalog, the vectors, the thumbnails, the index and the adapter registry agree")
        return
    groups = report.by_partition()
    partitions = sum(1 for key in groups if key is not None)
    whole = " and the warehouse as a whole" if None in groups else ""
    click.echo(f"{len(report.problems)} problems in {partitions} partitions{whole}")
    for key, problems in groups.items():
        click.echo(key if key is not None else "(warehouse)")
        for p in problems:
            examples = f" (e.g. {', '.join(str(e) for e in p.examples[:3])})" if p.examples else ""
            click.echo(f"  {p.kind}: {p.detail}{examples} -> {p.repair.describe()}")
    if report.repairs():
        click.echo("repair: media-assets verify --repair")


@main.command()
@warehouse_option
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--keep", default=5, show_default=True, type=click.IntRange(min=1), help="Backups kept in FOLDER (newest first)."
)
@_friendly_errors
def backup(warehouse_dir, folder, keep) -> None:
    """Write a consistent copy of the warehouse into FOLDER/<UTC timestamp>/ (while it is in use) and remove
    all but the newest --keep backups there. The Dagster instance and the media files are not copied."""
    from media_assets.stages.verify import verify_warehouse
    from media_assets.store.backup import BackupError, backup_warehouse

    warehouse = _existing(warehouse_dir)
    try:
        result = backup_warehouse(warehouse, folder, keep=keep)
    except BackupError as exc:
        raise ValueError(str(exc)) from exc
    m = result.manifest
    rows = sum(t["rows"] for t in m["tables"].values())
    vectors = ", ".join(f"{name} v{v['version']} ({v['rows']})" for name, v in sorted(m["vectors"].items()))
    click.echo(
        f"backup {result.path}: {m['files']} files, {m['bytes'] / 2**20:.1f} MiB; {rows} catalog rows, "
        f"{m['thumbnails']} thumbnails, {m['face_crops']} face crops; {vectors or 'no vectors'} ({m['elapsed_s']:.1f}s)"
    )
    if not m["settled"]:
        click.echo(
            f"warning: still changing after {m['passes']} passes: {', '.join(m['still_changing'][:5])}; "
            "the copy may mix their states (back up again when the runs are done)"
        )
    copy = verify_warehouse(Warehouse.at(result.path, vectors_uri=str(result.path / "vectors")))
    click.echo(
        "the copy verifies clean"
        if copy.clean
        else f"the copy has {len(copy.problems)} problems, as the warehouse had (see: media-assets verify)"
    )
    for path in result.removed:
        click.echo(f"removed the older backup {path}")


@main.command()
@warehouse_option
@click.argument("backup_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--force", is_flag=True, help="Replace a warehouse that is not empty (its Dagster instance and media/ are kept)."
)
@_friendly_errors
def restore(warehouse_dir, backup_dir, force) -> None:
    """Bring back BACKUP_DIR (a folder media-assets backup wrote) as the warehouse: every file's sha256 is
    checked while it is copied into a temporary folder, which then takes the warehouse's place; then verify."""
    from media_assets.defs.runner import register_partitions
    from media_assets.stages.verify import verify_warehouse
    from media_assets.store.backup import BackupError, restore_warehouse

    try:
        result = restore_warehouse(backup_dir, Warehouse.at(warehouse_dir), force=force)
    except BackupError as exc:
        raise ValueError(str(exc)) from exc
    kept = f"; kept its {' and '.join(result.kept)}" if result.kept else ""
    click.echo(
        f"restored {result.files} files ({result.bytes / 2**20:.1f} MiB) of the backup taken "
        f"{result.manifest['created_at']} into {result.root}{kept}"
    )
    warehouse = Warehouse.at(result.root)
    click.echo(f"registered {register_partitions(warehouse)} media files as partitions of the Dagster instance")
    if not result.media_files_present:
        click.echo(
            f"warning: the media root {result.media_root} has no files: put the media back (or point "
            "MEDIA_ASSETS_MEDIA_ROOT at it) before Dagster's media sensor runs, or it removes what it cannot find"
        )
    report = verify_warehouse(warehouse)
    _print_verify(report)
    sys.exit(0 if report.clean else 1)


@main.command()
@warehouse_option
@click.argument("media_file")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["srt", "vtt", "txt", "json"]),
    default="srt",
    show_default=True,
    help="Subtitles (srt, vtt), plain text or JSON with the words' times.",
)
@click.option("--source", default=None, help="'asr', 'subtitles' or an exact source (default: the primary one).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write to a file.")
@_friendly_errors
def transcript(warehouse_dir, media_file, fmt, source, output) -> None:
    """Write the stored transcript of MEDIA_FILE (a path, or its key relative to the media root)."""
    from media_assets.store.transcripts import TranscriptNotFoundError, transcript_as

    warehouse = _existing(warehouse_dir)
    media_id = _media_id_of(warehouse, media_file)
    try:
        text = transcript_as(warehouse, media_id, fmt, source=source)
    except TranscriptNotFoundError as exc:
        raise ValueError(f"{media_file}: {exc} (materialize its transcripts: media-assets ingest)") from exc
    _write_out(text, output)


@main.command()
@warehouse_option
@click.argument("media_file")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "vtt", "youtube"]),
    default="table",
    show_default=True,
    help="A table to read, JSON, a WebVTT chapters track, or YouTube description lines (0:00 Title).",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write to a file.")
@_friendly_errors
def chapters(warehouse_dir, media_file, fmt, output) -> None:
    """Print (or write) the chapters of MEDIA_FILE: times, titles and summaries (a path, or its key)."""
    from media_assets.store.chapters import ChaptersNotFoundError, chapters_as, read_chapters

    warehouse = _existing(warehouse_dir)
    media_id = _media_id_of(warehouse, media_file)
    try:
        text = (
            _chapters_table(read_chapters(warehouse, media_id))
            if fmt == "table"
            else chapters_as(warehouse, media_id, fmt)
        )
    except ChaptersNotFoundError as exc:
        raise ValueError(f"{media_file}: {exc} (materialize its chapters: media-assets ingest)") from exc
    _write_out(text, output)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _chapters_table(toc) -> str:
    """A file's chapters for a terminal: one block per chapter (times, title, how it was summarised, summary)."""
    import textwrap

    if not toc.chapters:
        return f"{toc.partition_key}: no chapters ({'a photo' if toc.kind == 'image' else 'no known length'})\n"
    count = len(toc.chapters)
    lines = [f"{toc.partition_key}: {count} chapter{'s' if count != 1 else ''}", ""]
    if toc.summary and toc.summary != toc.chapters[0]["summary"]:  # one chapter: its summary is the file's
        lines += [*textwrap.wrap(toc.summary, 100, initial_indent="  ", subsequent_indent="  "), ""]
    for chapter in toc.chapters:
        span = f"{_clock(chapter['start_s'])}-{_clock(chapter['end_s'])}"
        lines.append(f"{chapter['index'] + 1:>3}  {span:>13}  {chapter['title']}  [{chapter['method']}]")
        lines += textwrap.wrap(chapter["summary"], 96, initial_indent=" " * 20, subsequent_indent=" " * 20)
    return "\n".join(lines) + "\n"


def _write_out(text: str, output: Path | None) -> None:
    """Print `text`, or write it to `output` and say so."""
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}")


def _media_id_of(warehouse: Warehouse, media_file: str) -> int:
    """The media id of a file given by its path (absolute, or relative to here) or its partition key."""
    from media_assets.store import catalog

    candidates = {media_file}
    path = Path(media_file).expanduser()
    for absolute in (path.resolve(), (warehouse.media_root / media_file).resolve()):
        candidates.add(str(absolute))
        try:
            candidates.add(absolute.relative_to(warehouse.media_root.resolve()).as_posix())
        except ValueError:
            pass
    names = sorted(candidates)
    marks = ", ".join("?" for _ in names)
    rows = catalog.query(
        warehouse,
        f"SELECT media_id FROM media WHERE partition_key IN ({marks}) OR path IN ({marks})",
        names + names,
    ).to_pylist()
    if not rows:
        raise ValueError(f"{media_file}: not in the warehouse's media (see: media-assets status)")
    return int(rows[0]["media_id"])


tokens_option = click.option(
    "--tokens",
    "tokens_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Token file (default: <warehouse>/tokens.json).",
)


@main.command()
@warehouse_option
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0: every interface)."
)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@tokens_option
@click.option(
    "--no-auth",
    is_flag=True,
    help="Serve without tokens on a network address too: anyone who can reach it reads and writes.",
)
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    help="Another name the server is reached by (the Host header), e.g. media.example.org; repeatable.",
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    help="Let pages of this origin (e.g. https://app.example:3000) call the API (CORS); repeatable.",
)
@_friendly_errors
def serve(warehouse_dir, host, port, tokens_file, no_auth, allow_hosts, cors_origins) -> None:
    """The HTTP API and the web page (http://HOST:PORT/, API docs at /docs).

    With tokens (media-assets tokens add, or $MEDIA_ASSETS_TOKENS=name:role:token,...) every request needs
    one; without, it serves open on a loopback address only (--no-auth to serve open anywhere)."""
    from media_assets.apps.access import serving_access
    from media_assets.apps.server import serve as run_server

    warehouse = _existing(warehouse_dir)
    access, notes = serving_access(
        warehouse, host, tokens_file=tokens_file, no_auth=no_auth, allow_hosts=allow_hosts, cors_origins=cors_origins
    )
    for note in notes:
        click.echo(note, err=True)
    click.echo(f"serving {warehouse.root} at http://{host}:{port}/ (API docs: /docs); Ctrl-C stops")
    try:
        run_server(warehouse, host=host, port=port, access=access)
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its clean shutdown
        click.echo("stopped")


@main.group("tokens")
def tokens_group() -> None:
    """API tokens for serve: a name (recorded in feedback rows) and a role, viewer (reads) or editor (also
    writes feedback, pins and names). The file keeps only their SHA-256."""


def _tokens_file(warehouse_dir, tokens_file) -> Path:
    from media_assets.apps.access import tokens_path

    return tokens_file if tokens_file is not None else tokens_path(_existing(warehouse_dir))


@tokens_group.command("add")
@warehouse_option
@tokens_option
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "editor"]), default="viewer", show_default=True)
@_friendly_errors
def tokens_add(warehouse_dir, tokens_file, name, role) -> None:
    """A new random token NAME; prints it once (on stdout, alone: TOKEN=$(media-assets tokens add ci))."""
    from media_assets.apps.access import add_token

    path = _tokens_file(warehouse_dir, tokens_file)
    token = add_token(path, name, role)
    click.echo(f"token {name!r} ({role}) added to {path}; it is shown this once, keep it:", err=True)
    click.echo(token)


@tokens_group.command("list")
@warehouse_option
@tokens_option
@_friendly_errors
def tokens_list(warehouse_dir, tokens_file) -> None:
    """The tokens' names, roles and when they were made (and those of $MEDIA_ASSETS_TOKENS)."""
    import os

    from media_assets.apps.access import TOKENS_ENV, parse_tokens_env, read_tokens_file

    path = _tokens_file(warehouse_dir, tokens_file)
    tokens = read_tokens_file(path) + parse_tokens_env(os.environ.get(TOKENS_ENV, ""))
    if not tokens:
        click.echo(f"no tokens in {path} or ${TOKENS_ENV} (add one: media-assets tokens add NAME --role viewer)")
        return
    width = max(len(t.name) for t in tokens)
    for token in tokens:
        where = (token.created_at or "") if token.origin == "file" else f"${token.origin}"
        click.echo(f"{token.name:<{width}}  {token.role:<6}  {where}")


@tokens_group.command("remove")
@warehouse_option
@tokens_option
@click.argument("name")
@_friendly_errors
def tokens_remove(warehouse_dir, tokens_file, name) -> None:
    """Take token NAME out: a running server refuses it within a second."""
    from media_assets.apps.access import remove_token

    path = _tokens_file(warehouse_dir, tokens_file)
    gone = remove_token(path, name)
    click.echo(f"removed token {gone.name!r} ({gone.role}) from {path}")


@main.group("clusters")
def clusters_group() -> None:
    """List scene and character clusters, name them, pin shots or faces to them."""


@clusters_group.command("list")
@warehouse_option
@click.option("--level", type=click.Choice(["scene", "character"]), default=None, help="Only this level.")
@_friendly_errors
def clusters_list(warehouse_dir, level) -> None:
    """Clusters with their size, videos and name, then the noise bucket's size."""
    from media_assets.store import catalog

    warehouse = _existing(warehouse_dir)
    rows = catalog.query(
        warehouse,
        "SELECT cluster_id, level, parent_id, size, media_count, cohesion, name FROM clusters "
        "WHERE ? IS NULL OR level = ? ORDER BY level DESC, size DESC, cluster_id",
        [level, level],
    ).to_pylist()
    if not rows:
        click.echo("no clusters (materialize clusters: media-assets ingest, or the cluster_library job)")
        return
    click.echo(f"{'cluster':>8}  {'level':<9}  {'parent':>6}  {'size':>5}  {'videos':>6}  {'cohesion':>8}  name")
    for r in rows:
        click.echo(
            f"{r['cluster_id']:>8}  {r['level']:<9}  {r['parent_id'] or '':>6}  {r['size']:>5}  "
            f"{r['media_count']:>6}  {r['cohesion']:8.3f}  {r['name'] or ''}"
        )
    noise = catalog.query(
        warehouse,
        "SELECT member_kind, count(*) AS n FROM cluster_members WHERE is_noise "
        "GROUP BY member_kind ORDER BY member_kind",
    ).to_pylist()
    click.echo("noise bucket: " + (", ".join(f"{r['n']} {r['member_kind']}s" for r in noise) or "empty"))


@clusters_group.command("name")
@warehouse_option
@click.argument("cluster_id", type=int)
@click.argument("name", required=False, default="")
@_friendly_errors
def clusters_name(warehouse_dir, cluster_id, name) -> None:
    """Name CLUSTER_ID (no NAME: clear its name). Shows at once and survives re-clustering."""
    from media_assets.feedback.pins import name_cluster

    row = name_cluster(_existing(warehouse_dir), cluster_id, name, source="cli")
    click.echo(f"cluster {cluster_id} is now " + (f"named {row['name']!r}" if row["name"] else "unnamed"))


@clusters_group.command("pin")
@warehouse_option
@click.argument("member_kind", type=click.Choice(["shot", "face"]))
@click.argument("member_id", type=int)
@click.argument("cluster_id", type=int, required=False, default=None)
@_friendly_errors
def clusters_pin(warehouse_dir, member_kind, member_id, cluster_id) -> None:
    """Pin a shot to a scene cluster or a face to a character cluster (no CLUSTER_ID: unpin). Takes effect
    at the next clustering."""
    from media_assets.feedback.pins import pin_member

    pin_member(_existing(warehouse_dir), member_kind, member_id, cluster_id, source="cli")
    where = f"to cluster {cluster_id}" if cluster_id is not None else "removed"
    click.echo(f"{member_kind} {member_id}: pin {where}; apply it with: media-assets clusters update")


@clusters_group.command("update")
@warehouse_option
@_friendly_errors
def clusters_update(warehouse_dir) -> None:
    """Re-cluster the library now (the cluster_library job), applying pins."""
    from media_assets.defs.runner import recluster

    click.echo(f"clusters: {recluster(_existing(warehouse_dir))}")


@main.command("learn")
@warehouse_option
@_friendly_errors
def learn(warehouse_dir) -> None:
    """Learn from the feedback now (the learn_from_feedback job the feedback sensor requests): train a
    candidate adapter, let the gate decide, and when promoted refresh the vectors, index and clusters."""
    from media_assets.defs.runner import learn_now

    for line in learn_now(_existing(warehouse_dir)):
        click.echo(line)


@main.group("adapter")
def adapter_group() -> None:
    """Embedding adapter versions learned from feedback: list them, roll back."""


@adapter_group.command("list")
@warehouse_option
@_friendly_errors
def adapter_list(warehouse_dir) -> None:
    """Every adapter version, what the promotion gate said, and which one is current."""
    from media_assets.store import catalog
    from media_assets.store.adapters import current_version

    warehouse = _existing(warehouse_dir)
    rows = catalog.query(
        warehouse,
        "SELECT version, status, feedback_rows, held_out_metric_name, held_out_metric, held_out_base, decision, "
        "recorded_at "
        "FROM adapters ORDER BY recorded_at",
    ).to_pylist()
    click.echo(f"current adapter version: {current_version(warehouse)} (0: none)")
    for r in rows:
        metric = "-"
        if r["held_out_metric"] is not None:
            base = f" (base {r['held_out_base']:.3f})" if r["held_out_base"] is not None else ""
            metric = f"held-out {r['held_out_metric_name']} {r['held_out_metric']:.3f}{base}"
        when = r["recorded_at"].strftime("%Y-%m-%d %H:%M")
        click.echo(
            f"  v{r['version']:<4} {r['status']:<9} {when}  feedback rows {r['feedback_rows'] or 0:>5}  {metric}"
        )
        if r["decision"]:
            click.echo(f"        {r['decision']}")


@adapter_group.command("rollback")
@warehouse_option
@click.argument("version", type=int, required=False)
@_friendly_errors
def adapter_rollback(warehouse_dir, version) -> None:
    """Make the previous adapter current again (or VERSION; 0 = none), then re-derive the adapted vectors,
    the index and the clusters."""
    from media_assets.defs.runner import refresh_after_adapter_change
    from media_assets.stages.adapter import LearningError, rollback

    warehouse = _existing(warehouse_dir)
    try:
        now = rollback(warehouse, version)
    except LearningError as exc:
        raise ValueError(str(exc)) from exc
    click.echo(f"adapter version {now} is current; {refresh_after_adapter_change(warehouse)}")


@main.command("make-test-model")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--size", type=click.Choice(["tiny", "vit-b-32"]), default="vit-b-32", show_default=True)
@_friendly_errors
def make_test_model(folder, size) -> None:
    """Save a RANDOM-weights CLIP checkpoint to FOLDER, for machines without Hugging Face Hub access.

    Its search results mean nothing; it exercises the real loading and embedding code. Use it with
    MEDIA_ASSETS_CLIP_MODEL=FOLDER (or --clip-model FOLDER).
    """
    from media_assets.demo.random_clip import write_random_clip

    path = write_random_clip(folder, size=size)
    click.echo(f"wrote a random-weights {size} CLIP checkpoint to {path}")
    click.echo(f"use it with: export MEDIA_ASSETS_CLIP_MODEL={path.resolve()}")


if __name__ == "__main__":
    main()
