"""Image uploads to the HTTP API (`POST /search/image`): read, checked by what they are, decoded.

An upload is judged by its content alone: its file name and the Content-Type the client sent are never
looked at. What it can get, and why:

- more than `max_bytes`: 413 (the `UploadLimit` middleware refuses most before the body is read);
- empty: 422;
- not a JPEG, PNG, WebP, GIF, BMP or TIFF by its magic bytes: 422, naming what it is (a PDF, text, …);
- declares more pixels than `MEDIA_ASSETS_MAX_PIXELS`: 413, naming its width × height and the limit;
  nothing of it is decoded;
- truncated or corrupt: 422.

Not-an-image is a 422 like every other bad parameter of the API, not a 415: that status speaks of the
request's Content-Type, which is a well-formed multipart form here. Too many pixels is a 413 like too many
bytes: the remedy is the same, send a smaller picture. Decoding runs on a worker thread, so a large photo
does not hold up the server's event loop.
"""

from __future__ import annotations

import numpy as np
from fastapi import HTTPException, UploadFile
from starlette.concurrency import run_in_threadpool

from media_assets.errors import MediaReadError
from media_assets.media.decoding import PixelLimitError, decode_image

CHUNK_BYTES = 2**20


async def read_image_upload(file: UploadFile, max_bytes: int, max_pixels: int | None = None) -> np.ndarray:
    """The uploaded photo as an upright BGR uint8 array, or an HTTPException with the status listed
    above. `max_pixels` None: `MEDIA_ASSETS_MAX_PIXELS`, else the default (see media.decoding)."""
    data = bytearray()
    while chunk := await file.read(CHUNK_BYTES):
        data += chunk
        if len(data) > max_bytes:
            raise HTTPException(413, f"the upload is larger than {max_bytes // 2**20} MiB")
    if not data:
        raise HTTPException(422, "the uploaded file is empty")
    try:
        return await run_in_threadpool(decode_image, bytes(data), "the upload", max_pixels)
    except PixelLimitError as exc:
        raise HTTPException(413, f"refused: {exc.reason}") from exc
    except MediaReadError as exc:
        raise HTTPException(422, f"cannot use the upload: {exc.reason}") from exc
