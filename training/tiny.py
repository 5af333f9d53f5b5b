"""``--base-model tiny``: a small Llama-style model and a BPE tokenizer built offline.

The tokenizer is a byte-level BPE trained on the fly, on the training texts when
there are some (so a from-scratch model spends its few positions on whole words)
and on a small embedded corpus otherwise. Its pre-tokenizer splits camelCase, as
the tokenizers of real models mostly do, so ``getWeatherForecast`` and
``getWeatherHistory`` share their first tokens and differ at a later one: the
case key-token weighting is for. Everything is deterministic for a seed.
"""
from __future__ import annotations

from typing import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from training.config import TinyConfig
from training.templates import EXTRA_SPECIAL_TOKENS, SPECIAL_TOKENS, TEMPLATES

# camelCase words, runs of capitals, single digits, punctuation runs, whitespace.
_SPLIT = r" ?[A-Z]?[a-z]+| ?[A-Z]+(?![a-z])| ?[0-9]| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+"

_DEFAULT_CORPUS = """\
You are a helpful assistant. What is the weather in Paris tomorrow? Let me check that for you.
The forecast for the next days is sunny with a high of 21 degrees. Here is what I found.
I could not find that, could you tell me the city and the date? Thank you, that is all.
{"name": "getWeatherForecast", "arguments": {"city": "Paris", "days": 3}}
{"type": "function", "function": {"name": "searchFlights", "description": "Search flights.",
"parameters": {"type": "object", "properties": {"origin": {"type": "string"}}, "required": ["origin"]}}}
{"error": "missing required argument"} {"ok": true, "result": [1, 2, 3], "count": 0.5}
"""


def build_tokenizer(config: TinyConfig, corpus: Iterable[str] | None = None):
    """A fast tokenizer with the style's chat template and special tokens."""
    if config.template not in TEMPLATES:
        raise ValueError(f"unknown tiny template {config.template!r}: use one of {', '.join(TEMPLATES)}")
    return byte_level_tokenizer(
        TEMPLATES[config.template], SPECIAL_TOKENS[config.template], EXTRA_SPECIAL_TOKENS[config.template],
        corpus, config.vocab_size,
    )


def byte_level_tokenizer(
    chat_template: str,
    special: dict[str, str],
    extra_special: Iterable[str] = (),
    corpus: Iterable[str] | None = None,
    vocab_size: int = 1024,
):
    """A byte-level BPE trained on ``corpus`` that keeps ``special`` (bos/eos/pad…) and ``extra_special`` whole.

    Any chat template can be attached: this is how a real model's template is
    tried offline, with that template's markers added as special tokens.
    """
    from transformers import PreTrainedTokenizerFast

    special_list = list(dict.fromkeys([*special.values(), *extra_special]))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_list,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = list(corpus) if corpus is not None else []
    tok.train_from_iterator(texts or [_DEFAULT_CORPUS], trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, chat_template=chat_template, padding_side="right", **special)


def build_model(config: TinyConfig, tokenizer):
    """A randomly initialised ``LlamaForCausalLM`` sized for a CPU, the same for the same seed."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    model_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        max_position_embeddings=config.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        model = LlamaForCausalLM(model_config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def build(config: TinyConfig | None = None, corpus: Iterable[str] | None = None):
    """The tiny ``(model, tokenizer)`` pair."""
    config = config or TinyConfig()
    tokenizer = build_tokenizer(config, corpus)
    return build_model(config, tokenizer), tokenizer
