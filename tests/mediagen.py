"""Media made for tests: real photographs that scikit-image ships, videos written with OpenCV or PyAV."""

from __future__ import annotations

import fractions
from pathlib import Path

import cv2
import numpy as np


def photo(name: str = "astronaut", size: tuple[int, int] = (320, 180)) -> np.ndarray:
    """A real photograph that scikit-image ships, as BGR at `size` (width, height)."""
    import skimage.data

    rgb = getattr(skimage.data, name)()
    if rgb.ndim == 2:
        rgb = np.stack([rgb] * 3, axis=-1)
    return cv2.resize(cv2.cvtColor(rgb[..., :3], cv2.COLOR_RGB2BGR), size, interpolation=cv2.INTER_AREA)


def write_video(path: Path, frames: list[np.ndarray], fps: float = 30.0, fourcc: str = "mp4v") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def shots_video(
    path: Path, sources: list[str], seconds_each: float = 2.0, fps: float = 30.0, size: tuple[int, int] = (320, 180)
) -> Path:
    """Hard cuts between still photographs."""
    frames = []
    for source in sources:
        image = photo(source, size)
        frames += [image] * int(round(seconds_each * fps))
    return write_video(path, frames, fps)


def write_vfr_video(path: Path, times: list[float], size: tuple[int, int] = (160, 120)) -> Path:
    """A variable-frame-rate MPEG-4 file whose frames sit at the given presentation times (PyAV)."""
    import av

    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = stream.codec_context.time_base = fractions.Fraction(1, 1000)
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), (i * 23) % 256, np.uint8), format="rgb24")
            frame.pts, frame.time_base = int(round(t * 1000)), fractions.Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
