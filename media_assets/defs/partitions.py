"""The partitions: one `media_files` partition per media file, keyed by its path relative to the media root.

`media_sensor` (and `media-assets ingest`) add and delete them as files appear and disappear; every
per-file asset is partitioned by them.
"""

from dagster import AssetExecutionContext, DynamicPartitionsDefinition, Failure

from media_assets.media.discovery import MediaFile, stat_media_file
from media_assets.warehouse import Warehouse

media_files = DynamicPartitionsDefinition(name="media_files")


def media_file_of(context: AssetExecutionContext, warehouse: Warehouse) -> MediaFile:
    """The media file of the run's partition, or a `Failure` naming the file and why it cannot be read."""
    key = context.partition_key
    path = warehouse.media_root / key
    try:
        return stat_media_file(path, warehouse.media_root)
    except (OSError, ValueError) as exc:
        reason = "file no longer exists" if isinstance(exc, FileNotFoundError) else str(exc)
        raise Failure(description=f"{path}: {reason}", metadata={"path": str(path)}) from exc
