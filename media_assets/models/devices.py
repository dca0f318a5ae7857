"""Where a torch model runs: `'auto'` is CUDA when present (the encoders then use half precision), else the CPU.

Shared by the CLIP and sentence encoders; the ASR (CTranslate2) and OCR (onnxruntime) engines resolve
their own devices.
"""

from __future__ import annotations


def resolve_device(device: str = "auto") -> str:
    """'auto' → 'cuda' when torch sees a GPU, else 'cpu'; an explicit CUDA device that is not there is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available here")
    return device
