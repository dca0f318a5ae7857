"""CLIP checkpoints with random weights, for machines that cannot reach the Hugging Face Hub.

`write_random_clip(folder, size="tiny")` saves a CLIP-architecture model, its image processor and a
byte-level BPE tokenizer (a small vocabulary) with `save_pretrained`, so the real loading code
(`AutoModel`/`AutoProcessor.from_pretrained(folder)`) runs on it. `size="vit-b-32"` gives the real
ViT-B/32 shapes (for speed measurements); `"tiny"` a few-hundred-kilobyte model for tests.

Random weights carry no meaning: search results are arbitrary except that a stored frame used as the
query finds itself. Use them for tests, benchmarks and offline smoke runs only.
"""

from __future__ import annotations

import json
from pathlib import Path

SIZES = ("tiny", "vit-b-32")


def _byte_alphabet() -> list[str]:
    """GPT-2/CLIP's reversible byte → printable unicode mapping."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


def _write_tokenizer_files(folder: Path) -> int:
    alphabet = _byte_alphabet()
    merges = [("t", "h"), ("th", "e</w>"), ("a", "n"), ("i", "n"), ("o", "n</w>"), ("e", "r")]
    vocab: dict[str, int] = {}
    for token in alphabet + [c + "</w>" for c in alphabet] + ["".join(pair) for pair in merges]:
        vocab.setdefault(token, len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(pair) for pair in merges) + "\n")
    return len(vocab)


def write_random_clip(folder: str | Path, *, size: str = "tiny", seed: int = 0) -> Path:
    """Save a random-weights CLIP checkpoint to `folder` and return it."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = _write_tokenizer_files(folder)
    bos_id, eos_id = vocab_size - 2, vocab_size - 1
    # positional: transformers 5's CLIPTokenizer ignores vocab_file=/merges_file= keywords (it would keep
    # only its two special tokens, and every text would get the same vector)
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)
    if len(tokenizer) != vocab_size or tokenizer.eos_token_id != eos_id:
        raise RuntimeError(
            f"the tokenizer read {len(tokenizer)} tokens (eos {tokenizer.eos_token_id}), "
            f"expected {vocab_size} (eos {eos_id})"
        )
    if size == "tiny":
        image_size = 64
        config = CLIPConfig(
            text_config={
                "vocab_size": vocab_size,
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "max_position_embeddings": 77,
                "bos_token_id": bos_id,
                "eos_token_id": eos_id,
                "pad_token_id": eos_id,
            },
            vision_config={
                "image_size": image_size,
                "patch_size": 16,
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
            },
            projection_dim=32,
        )
    else:  # ViT-B/32 as openai/clip-vit-base-patch32 (the text vocabulary is small; its shapes elsewhere are real)
        image_size = 224
        config = CLIPConfig(
            text_config={
                "vocab_size": 49408,
                "max_position_embeddings": 77,
                "bos_token_id": bos_id,
                "eos_token_id": eos_id,
                "pad_token_id": eos_id,
            },
            vision_config={"image_size": 224, "patch_size": 32},
            projection_dim=512,
        )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
    )
    model.save_pretrained(folder)
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder
