"""Small previews for people: a contact sheet of thumbnails, as a JPEG or inline Markdown."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np


def contact_sheet(
    paths: Sequence[Path], *, tile_width: int = 128, columns: int = 6, labels: Sequence[str] | None = None
) -> np.ndarray | None:
    """Thumbnails side by side (BGR), at most `columns` per row, with an optional caption on each."""
    tiles = []
    for i, path in enumerate(paths):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            continue
        height = max(1, round(image.shape[0] * tile_width / image.shape[1]))
        tile = cv2.resize(image, (tile_width, height), interpolation=cv2.INTER_AREA)
        if labels is not None:
            cv2.putText(tile, labels[i], (4, height - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(
                tile, labels[i], (4, height - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA
            )
        tiles.append(tile)
    if not tiles:
        return None
    tile_height = max(t.shape[0] for t in tiles)
    rows = []
    for start in range(0, len(tiles), columns):
        row = np.zeros((tile_height, tile_width * columns, 3), np.uint8)
        for j, tile in enumerate(tiles[start : start + columns]):
            row[: tile.shape[0], j * tile_width : (j + 1) * tile_width] = tile
        rows.append(row)
    sheet = np.vstack(rows)
    if len(tiles) < columns:
        sheet = sheet[:, : tile_width * len(tiles)]
    return sheet


def evenly_spaced(items: Sequence, count: int) -> list:
    if len(items) <= count:
        return list(items)
    return [items[round(i * (len(items) - 1) / (count - 1))] for i in range(count)] if count > 1 else [items[0]]


def markdown_image(image: np.ndarray, alt: str = "preview", quality: int = 80) -> str:
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        return ""
    return f"![{alt}](data:image/jpeg;base64,{base64.b64encode(jpeg.tobytes()).decode('ascii')})"
