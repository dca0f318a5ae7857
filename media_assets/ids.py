"""The warehouse's ids: stable integers that every table, vector and URL joins on.

A media file's `media_id` is a stable 43-bit integer derived from its partition key (its path relative to
the media root), so the same file keeps its id across re-materializations. Frame, shot, face, transcript
segment and text ids are `media_id << FRAME_SEQ_BITS | n` (n = the frame's position among the file's sampled
frames, or the row's index in the file), so `id >> 20` gives back the media id, in SQL too. All ids fit a
signed 64-bit integer (`MAX_ID`), the catalog's BIGINT.
"""

from __future__ import annotations

import hashlib

MEDIA_ID_BITS = 43
FRAME_SEQ_BITS = 20
MAX_FRAMES_PER_MEDIA = 1 << FRAME_SEQ_BITS
MAX_ID = 2**63 - 1  # ids are signed 64-bit integers in the catalog


def media_id_for(partition_key: str) -> int:
    """Stable id of a media file from its partition key (its path relative to the media root)."""
    digest = hashlib.blake2b(partition_key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> (64 - MEDIA_ID_BITS)


def frame_id_for(media_id: int, seq: int) -> int:
    if not 0 <= seq < MAX_FRAMES_PER_MEDIA:
        raise ValueError(f"frame sequence number {seq} is outside [0, {MAX_FRAMES_PER_MEDIA})")
    return (media_id << FRAME_SEQ_BITS) | seq


def media_id_of_frame(frame_id: int) -> int:
    return frame_id >> FRAME_SEQ_BITS


def shot_id_for(media_id: int, shot_index: int) -> int:
    """Shot ids share the frame ids' layout: `media_id << 20 | shot_index`."""
    return frame_id_for(media_id, shot_index)


def segment_id_for(media_id: int, segment_index: int) -> int:
    """Transcript segment ids share the frame ids' layout: `media_id << 20 | segment_index`."""
    return frame_id_for(media_id, segment_index)


def text_id_for(media_id: int, index: int) -> int:
    """Ids of screen-text rows and of text-vector rows share the frame ids' layout: `media_id << 20 | index`
    (numbered per file and table)."""
    return frame_id_for(media_id, index)


def face_id_for(media_id: int, face_index: int) -> int:
    """Face ids share the frame ids' layout: `media_id << 20 | face_index` (faces numbered per file)."""
    return frame_id_for(media_id, face_index)
