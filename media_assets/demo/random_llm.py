"""A causal language model with random weights, for machines that cannot reach the Hugging Face Hub.

`write_random_causal_lm(folder)` saves a two-layer Llama-architecture model (hidden size 32) and a word-level
tokenizer over the few hundred English words of `VOCABULARY_TEXT` (built with `tokenizers`, lower-cased, other
words `<unk>`, wrapped in `PreTrainedTokenizerFast` with `<|endoftext|>` as its eos and `<pad>` as its pad
token, and a Zephyr-like chat template unless asked not to) with `save_pretrained`, so the real loading and
generating code (`AutoTokenizer`/`AutoModelForCausalLM.from_pretrained(folder)`, `generate`) runs on it:
`models.summaries.SummaryModel` in the tests. About 130 kB.

Word-level rather than byte-level BPE so that what it generates reads as words ("opened snow temperature
people ...") and not as bytes that are not UTF-8. Random weights carry no meaning: the text is a
deterministic jumble of the vocabulary. Use it for tests, timing and offline smoke runs only.
"""

from __future__ import annotations

import re
from pathlib import Path

# The tokenizer's vocabulary is the words and marks of this text: plain English of the kind a summary holds.
VOCABULARY_TEXT = """\
Summarise the passage below in a few sentences. The title of the chapter is given first.
The drilling rig in the north field reached its planned depth on Tuesday, two days ahead of schedule.
Engineers checked the pressure, the temperature and the flow of water before they opened the valve.
In this lecture we look at photosynthesis: how plants turn light, water and carbon dioxide into sugar.
The speaker explains the results of the quarter, the costs of the new factory and the plans for next year.
A family walks along the beach at sunset while children play in the waves and a dog runs after a ball.
The kitchen is busy: a cook cuts onions, another stirs a large pot of soup, and the oven door opens.
First, second, third; one, two, three, four, five, six, seven, eight, nine, ten; a hundred, a thousand.
Questions and answers follow the talk, about the data, the method, the model and what it cannot do.
The city at night, cars on the bridge, people crossing the street in the rain under red umbrellas.
Scientists measured the ice, the snow and the wind on the mountain for three months of the winter.
This video shows how to build a small wooden table with simple tools: a saw, a drill, glue and screws.
The team met to discuss the market, the customers, the prices and the time it takes to ship an order.
Music plays while the camera moves slowly across the old library, its books, windows and painted ceiling.
Doctors and nurses describe a normal day at the hospital, from the morning round to the evening report.
Our guide points at the map: here is the river, there the forest, the village, the castle and the road south.
Please write short, clear and honest sentences; never invent facts that the passage does not state.
Farmers harvest wheat in late summer, when the fields are golden, dry and warm under a bright blue sky.
"""
EOS = "<|endoftext|>"
PAD = "<pad>"
UNK = "<unk>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
# A Zephyr-like template: each message after its role token, ended by eos; the reply opens with <|assistant|>.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}" + EOS + "\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def _build_tokenizer(chat_template: bool):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = sorted(set(re.findall(r"\w+|[^\w\s]", VOCABULARY_TEXT.lower())))
    vocab = {token: i for i, token in enumerate([EOS, PAD, UNK, *ROLE_TOKENS, *words])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()  # words and punctuation marks
    tokenizer.decoder = decoders.WordPiece(cleanup=True)  # words joined by spaces, no space before "," or "."
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=EOS,
        bos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        additional_special_tokens=list(ROLE_TOKENS),
        model_max_length=512,
        chat_template=CHAT_TEMPLATE if chat_template else None,
    )


def write_random_causal_lm(folder: str | Path, *, seed: int = 0, chat_template: bool = True) -> Path:
    """Save a random-weights causal LM and its tokenizer to `folder` and return it. `chat_template=False`
    leaves the tokenizer without one (the plain-prompt path of `SummaryModel`)."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = _build_tokenizer(chat_template)
    eos_id, pad_id = tokenizer.convert_tokens_to_ids([EOS, PAD])
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        tie_word_embeddings=True,
        # weights 25x the usual spread: at 0.02 every next-token distribution is nearly flat and greedy
        # decoding repeats one special token (an empty text); at 0.5 it strings varied words together
        initializer_range=0.5,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    model.generation_config = GenerationConfig(bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=pad_id)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
