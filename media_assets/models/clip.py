"""CLIP encoders through `transformers`: images and text to L2-normalised float32 vectors.

`ClipEncoder.load(model)` takes a Hugging Face model id (default `openai/clip-vit-base-patch32`, or
$MEDIA_ASSETS_CLIP_MODEL) or a local folder saved with `save_pretrained`, and loads it with
`AutoModel`/`AutoProcessor`. Loaded encoders are cached per process, so a process loads a model once.

Preprocessing follows the checkpoint's image-processor config (shortest-edge resize, centre crop,
rescale, mean/std) but runs in OpenCV/numpy, on a background thread that prepares the next batch while the
model runs on the current one. Device `auto` picks CUDA when present (half precision, pinned host memory,
non-blocking copies), else the CPU (float32).

Text queries can opt into int8 on the CPU: `ClipEncoder.load(model, text_quantization="int8")` (or
$MEDIA_ASSETS_TEXT_QUANTIZATION=int8 for the search client and `media-assets serve`) runs the text tower's
linear layers with dynamic int8 quantisation (`torch.ao.quantization.quantize_dynamic`, per-channel
weights; the projection stays float32). On ViT-B/32 that makes a query ≈2.5× faster on one CPU thread
(`benchmarks/search.py`); on random weights the int8 vectors keep a cosine ≥ 0.998 to the float32 ones
(not measured on trained weights here). The quantised text tower is a copy of the text linear layers only
(embeddings and layer norms are shared, ≈40 MB more); the image path and its model are the same object as
the float32 encoder's. CUDA keeps fp16 and ignores the option.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from media_assets.errors import ModelLoadError
from media_assets.media.prefetch import prefetch
from media_assets.models.devices import resolve_device

log = logging.getLogger(__name__)

CLIP_MODEL_ENV = "MEDIA_ASSETS_CLIP_MODEL"
DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
TEXT_QUANTIZATION_ENV = "MEDIA_ASSETS_TEXT_QUANTIZATION"
TEXT_QUANTIZATIONS = ("none", "int8")

_CV2_INTERPOLATION = {0: cv2.INTER_NEAREST, 1: cv2.INTER_LANCZOS4, 2: cv2.INTER_LINEAR, 3: cv2.INTER_CUBIC}


def default_clip_model() -> str:
    return os.environ.get(CLIP_MODEL_ENV) or DEFAULT_CLIP_MODEL


def check_text_quantization(value: str | None, *, source: str = "text_quantization") -> str:
    """A valid text quantisation name ('none' or 'int8'); None and '' mean 'none'. Anything else is a
    ValueError naming `source` (the parameter or environment variable it came from)."""
    if value is None:
        return "none"
    if isinstance(value, str):
        name = value.strip().lower()
        if name in ("", "none", "fp32", "float32"):
            return "none"
        if name in TEXT_QUANTIZATIONS:
            return name
    raise ValueError(f"{source} must be one of {', '.join(TEXT_QUANTIZATIONS)}, got {value!r}")


def default_text_quantization() -> str:
    """The text quantisation asked for by $MEDIA_ASSETS_TEXT_QUANTIZATION ('none' when unset)."""
    return check_text_quantization(os.environ.get(TEXT_QUANTIZATION_ENV), source=f"${TEXT_QUANTIZATION_ENV}")


@dataclass(frozen=True)
class ImagePreprocessing:
    """The numbers of a CLIP image processor, applied with OpenCV."""

    shortest_edge: int
    crop_height: int
    crop_width: int
    mean: np.ndarray
    std: np.ndarray
    interpolation: int

    @classmethod
    def from_processor(cls, image_processor) -> ImagePreprocessing:
        size = _as_dict(image_processor.size)
        shortest = size.get("shortest_edge") or size.get("height")
        crop = _as_dict(getattr(image_processor, "crop_size", None) or shortest)
        resample = int(getattr(image_processor, "resample", 3))
        return cls(
            shortest_edge=int(shortest or crop["height"]),
            crop_height=int(crop.get("height") or shortest),
            crop_width=int(crop.get("width") or shortest),
            mean=np.asarray(image_processor.image_mean, dtype=np.float32).reshape(3, 1, 1),
            std=np.asarray(image_processor.image_std, dtype=np.float32).reshape(3, 1, 1),
            interpolation=_CV2_INTERPOLATION.get(resample, cv2.INTER_CUBIC),
        )

    def __call__(self, bgr: np.ndarray) -> np.ndarray:
        """BGR uint8 HxWx3 → float32 3xHxW, normalised."""
        height, width = bgr.shape[:2]
        scale = self.shortest_edge / min(height, width)
        new_w, new_h = max(self.crop_width, round(width * scale)), max(self.crop_height, round(height * scale))
        interpolation = cv2.INTER_AREA if scale < 1 else self.interpolation
        resized = cv2.resize(bgr, (new_w, new_h), interpolation=interpolation)
        top, left = (new_h - self.crop_height) // 2, (new_w - self.crop_width) // 2
        crop = resized[top : top + self.crop_height, left : left + self.crop_width, ::-1]  # → RGB
        chw = np.ascontiguousarray(crop.transpose(2, 0, 1), dtype=np.float32) * (1.0 / 255.0)
        return (chw - self.mean) / self.std


def _as_dict(size) -> dict:
    """Image-processor sizes come as an int, a dict or a SizeDict depending on the transformers version."""
    if isinstance(size, int):
        return {"height": size, "width": size, "shortest_edge": size}
    if isinstance(size, dict):
        return dict(size)
    return {k: getattr(size, k, None) for k in ("shortest_edge", "height", "width")}


def _features(output):
    """transformers 4 returns a tensor; 5 returns a model output whose pooler_output is the projection."""
    return output if hasattr(output, "shape") else output.pooler_output


class ClipEncoder:
    """A loaded CLIP model. Create with `ClipEncoder.load(model_id_or_path, device=..., batch_size=...)`."""

    def __init__(self, model_id: str, model, processor, device: str):
        import torch

        self.text_quantization = "none"  # see `load`; the int8 variant swaps in `_text_model`
        self._text_model = model
        self.model_id = model_id
        self.model = model
        self.processor = processor
        self.device = device
        self.dtype = torch.float16 if device.startswith("cuda") else torch.float32
        self.preprocess = ImagePreprocessing.from_processor(processor.image_processor)
        self.dim = int(model.config.projection_dim)
        self.max_text_tokens = int(model.config.text_config.max_position_embeddings)
        self._lock = threading.Lock()

    _cache: dict[tuple[str, ...], ClipEncoder] = {}
    _cache_lock = threading.Lock()

    @classmethod
    def load(
        cls, model: str | None = None, device: str = "auto", *, text_quantization: str | None = "none"
    ) -> ClipEncoder:
        """Load (once per process) a CLIP model by Hub id or local folder.

        `text_quantization="int8"` gives an encoder whose `encode_text` runs the text tower with dynamic
        int8 linear layers on the CPU (see the module docstring); it shares the model, the image path and
        the lock with the float32 encoder of the same model. On CUDA the option is ignored (fp16 there)."""
        model_id = str(model or default_clip_model())
        quantization = check_text_quantization(text_quantization)
        resolved = resolve_device(device)
        if quantization != "none" and not resolved.startswith("cpu"):
            log.info("text_quantization=%s applies to the CPU only; ignored on %s", quantization, resolved)
            quantization = "none"
        key = (model_id, resolved)
        with cls._cache_lock:
            if key not in cls._cache:
                cls._cache[key] = cls._load(model_id, resolved)
            encoder = cls._cache[key]
            if quantization == "none":
                return encoder
            variant = (model_id, resolved, quantization)
            if variant not in cls._cache:
                cls._cache[variant] = encoder._with_quantized_text(quantization)
            return cls._cache[variant]

    def _with_quantized_text(self, quantization: str) -> ClipEncoder:
        """This encoder with its text tower's linear layers in dynamic int8 (everything else shared)."""
        import copy

        started = time.perf_counter()
        text_model = getattr(self.model, "text_model", None)
        if text_model is None:
            raise ValueError(
                f"text_quantization={quantization!r} needs a CLIP-family model with a text_model; "
                f"{self.model_id!r} has none"
            )
        quantized = copy.copy(self.model)  # a shallow copy whose module table we may change
        quantized._modules = dict(self.model._modules)
        quantized.text_model = _quantize_linear_layers(text_model)
        variant = copy.copy(self)  # same model (image path), processor and lock
        variant.text_quantization = quantization
        variant._text_model = quantized
        log.info(
            "quantised the text tower of %s to %s in %.1fs", self.model_id, quantization, time.perf_counter() - started
        )
        return variant

    @classmethod
    def _load(cls, model_id: str, device: str) -> ClipEncoder:
        import torch
        from transformers import AutoModel, AutoProcessor

        started = time.perf_counter()
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        try:
            processor = AutoProcessor.from_pretrained(model_id)
            model = AutoModel.from_pretrained(model_id, dtype=dtype)
        except OSError as exc:
            hint = ""
            if not Path(model_id).exists():
                hint = (
                    f" (no local folder {model_id!r}; on a machine without Hugging Face Hub access, set "
                    f"{CLIP_MODEL_ENV} to a folder saved with save_pretrained)"
                )
            raise ModelLoadError(f"cannot load CLIP model {model_id!r}: {exc}{hint}") from exc
        if not hasattr(model, "get_image_features"):
            raise ModelLoadError(f"{model_id!r} is not a CLIP-family model (no get_image_features)")
        model.eval().to(device)
        log.info("loaded %s on %s in %.1fs", model_id, device, time.perf_counter() - started)
        return cls(model_id, model, processor, device)

    # -- images -------------------------------------------------------------------------------------

    def _to_device(self, batch: np.ndarray):
        import torch

        tensor = torch.from_numpy(batch)
        if self.device.startswith("cuda"):
            return tensor.pin_memory().to(self.device, dtype=self.dtype, non_blocking=True)
        return tensor

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Preprocessed float32 [n, 3, h, w] → L2-normalised float32 [n, dim]."""
        import torch

        with self._lock, torch.inference_mode():
            features = _features(self.model.get_image_features(pixel_values=self._to_device(pixels)))
            features = torch.nn.functional.normalize(features.float(), dim=-1)
        return features.cpu().numpy().astype(np.float32, copy=False)

    def encode_images(self, images: Sequence[np.ndarray], batch_size: int = 32) -> np.ndarray:
        """BGR uint8 images → vectors (batched, in memory)."""
        if not len(images):
            return np.zeros((0, self.dim), np.float32)
        out = []
        for start in range(0, len(images), batch_size):
            out.append(self.encode_pixels(np.stack([self.preprocess(im) for im in images[start : start + batch_size]])))
        return np.concatenate(out)

    def encode_image_files(
        self,
        paths: Sequence[Path | str],
        batch_size: int = 32,
        progress: Callable[[int, int], None] | None = None,
    ) -> tuple[np.ndarray, list[int]]:
        """Encode image files; a background thread reads and preprocesses the next batch while the model
        runs. Returns (vectors of the files that could be read, indices of the files that could not)."""
        vectors: list[np.ndarray] = []
        unreadable: list[int] = []
        done = 0
        for pixels, failed in prefetch(self._batches(paths, batch_size, unreadable)):
            if len(pixels):
                vectors.append(self.encode_pixels(pixels))
            done += len(pixels) + failed
            if progress is not None:
                progress(done, len(paths))
        result = np.concatenate(vectors) if vectors else np.zeros((0, self.dim), np.float32)
        return result, unreadable

    def _batches(
        self, paths: Sequence[Path | str], batch_size: int, unreadable: list[int]
    ) -> Iterator[tuple[np.ndarray, int]]:
        h, w = self.preprocess.crop_height, self.preprocess.crop_width
        for start in range(0, len(paths), batch_size):
            chunk = paths[start : start + batch_size]
            batch = np.empty((len(chunk), 3, h, w), np.float32)
            filled = 0
            for offset, path in enumerate(chunk):
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if image is None:
                    unreadable.append(start + offset)
                    continue
                batch[filled] = self.preprocess(image)
                filled += 1
            yield batch[:filled], len(chunk) - filled

    # -- text ---------------------------------------------------------------------------------------

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """Texts → L2-normalised float32 vectors. Texts longer than the model's token limit are truncated
        (with a logged warning); empty texts are an error."""
        import torch

        texts = list(texts)
        for text in texts:
            if not isinstance(text, str) or not text.strip():
                raise ValueError("a text query must be a non-empty string")
        tokenizer = self.processor.tokenizer
        full = tokenizer(texts, padding=False, truncation=False)["input_ids"]
        for text, ids in zip(texts, full, strict=True):
            if len(ids) > self.max_text_tokens:
                log.warning(
                    "query %r is %d tokens long; the text model reads %d, so it was truncated",
                    text[:60],
                    len(ids),
                    self.max_text_tokens,
                )
        inputs = tokenizer(texts, padding=True, truncation=True, max_length=self.max_text_tokens, return_tensors="pt")
        with self._lock, torch.inference_mode():
            inputs = {k: v.to(self.device) for k, v in inputs.items()}
            features = _features(self._text_model.get_text_features(**inputs))
            features = torch.nn.functional.normalize(features.float(), dim=-1)
        return features.cpu().numpy().astype(np.float32, copy=False)


def _quantize_linear_layers(module):
    """A copy of `module` whose `nn.Linear` layers are dynamic int8 (per-channel weights, activations
    quantised per call); its other parameters and buffers (embeddings, layer norms) are shared, not copied."""
    import copy
    import warnings

    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    shared = {}
    for child in module.modules():
        if not isinstance(child, torch.nn.Linear):
            for tensor in [*child.parameters(recurse=False), *child.buffers(recurse=False)]:
                shared[id(tensor)] = tensor
    clone = copy.deepcopy(module, shared)
    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao; it works as it is
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
        quantize_dynamic(clone, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)
    return clone.eval()
