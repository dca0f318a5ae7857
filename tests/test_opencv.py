"""Exactly one OpenCV package is installed (RapidOCR declares the headless build; two builds in one
environment overwrite each other's `cv2`), and its `cv2` has everything the code uses."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import cv2
import numpy as np

OPENCV_DISTRIBUTIONS = (
    "opencv-python",
    "opencv-python-headless",
    "opencv-contrib-python",
    "opencv-contrib-python-headless",
)


def test_one_opencv_distribution_is_installed():
    installed = []
    for name in OPENCV_DISTRIBUTIONS:
        try:
            installed.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    assert installed == [f"opencv-python-headless=={metadata.version('opencv-python-headless')}"], installed


def test_cv2_has_what_the_code_uses(tmp_path):
    # faces: the bundled Haar cascade and YuNet; decoding: FFmpeg-backed capture and writing
    cascade = Path(cv2.data.haarcascades) / "haarcascade_frontalface_alt2.xml"
    assert cascade.is_file() and not cv2.CascadeClassifier(str(cascade)).empty()
    assert hasattr(cv2, "FaceDetectorYN") and hasattr(cv2, "dnn")
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for i in range(5):
        writer.write(np.full((48, 64, 3), i * 40, np.uint8))
    writer.release()
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    assert capture.isOpened() and int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    ok, jpeg = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    assert ok and jpeg.size > 0
