"""Tiny random test models: a byte-level tokenizer and small configs with a fixed seed.

Everything here runs offline in well under a second; :data:`TINY` maps each test name to
its config builder and :func:`lgkit.models.load_model` builds the model.

Example:
    >>> from lgkit.models.tiny import TINY, tiny_tokenizer
    >>> len(tiny_tokenizer()), "tiny-random-llama" in TINY
    (261, True)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, PreTrainedTokenizerFast

__all__ = ["TINY", "TINY_CHAT_TEMPLATE", "build_tiny", "tiny_tokenizer"]

# --------------------------------------------------------------------------- tiny tokenizer

_SPECIALS = ["<pad>", "<bos>", "<eos>", "<|im_start|>", "<|im_end|>"]

TINY_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] not in ['system', 'user', 'assistant'] -%}"
    "{{ raise_exception('tiny chat template: unknown role ' + message['role']) }}"
    "{%- endif -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)


def tiny_tokenizer(chat_template: bool = True) -> PreTrainedTokenizerFast:
    """A small, deterministic, offline byte-level tokenizer for tests.

    Vocabulary: ``<pad>`` (0), ``<bos>`` (1), ``<eos>`` (2), ``<|im_start|>`` (3),
    ``<|im_end|>`` (4), then the 256 byte symbols (no merges): 261 tokens. Any text
    round-trips exactly. With ``add_special_tokens=True`` exactly one ``<bos>`` is
    prepended. The chat template (ChatML style) supports system/user/assistant roles and
    ``add_generation_prompt``; it adds no ``<bos>``.

    Args:
        chat_template: attach the chat template (``False`` gives a "base" tokenizer).

    Returns:
        A ``PreTrainedTokenizerFast`` with bos/eos/pad set.

    Example:
        >>> tok = tiny_tokenizer()
        >>> ids = tok("hi")["input_ids"]
        >>> ids[0] == tok.bos_token_id, tok.decode(ids, skip_special_tokens=True)
        (True, 'hi')
    """
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import BPE

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {tok: i for i, tok in enumerate(_SPECIALS)}
    for sym in alphabet:
        vocab[sym] = len(vocab)
    backend = Tokenizer(BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(_SPECIALS)
    bos_id = vocab["<bos>"]
    backend.post_processor = processors.TemplateProcessing(
        single="<bos> $A",
        pair="<bos> $A $B:1",
        special_tokens=[("<bos>", bos_id)],
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        model_max_length=512,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    if chat_template:
        tok.chat_template = TINY_CHAT_TEMPLATE
    return tok


# --------------------------------------------------------------------------- tiny models


def _tiny_common(tok: PreTrainedTokenizerBase) -> dict[str, Any]:
    return {
        "vocab_size": len(tok),
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
        "tie_word_embeddings": False,
    }


def _cfg_llama(tok: PreTrainedTokenizerBase, kv_heads: int = 4):
    from transformers import LlamaConfig

    return LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=kv_heads,
        max_position_embeddings=512,
        **_tiny_common(tok),
    )


def _cfg_qwen2(tok: PreTrainedTokenizerBase):
    from transformers import Qwen2Config

    return Qwen2Config(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        use_sliding_window=False,
        **_tiny_common(tok),
    )


def _cfg_gemma2(tok: PreTrainedTokenizerBase):
    from transformers import Gemma2Config

    common = _tiny_common(tok)
    common["tie_word_embeddings"] = True  # as in real Gemma 2
    return Gemma2Config(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=24,  # != hidden/heads, as in real Gemma 2 (q/o are 96x64 / 64x96)
        query_pre_attn_scalar=24,
        attn_logit_softcapping=50.0,
        final_logit_softcapping=30.0,
        sliding_window=32,
        max_position_embeddings=512,
        **common,
    )


def _cfg_gpt2(tok: PreTrainedTokenizerBase):
    from transformers import GPT2Config

    ids = _tiny_common(tok)
    return GPT2Config(
        vocab_size=ids["vocab_size"],
        n_embd=64,
        n_layer=2,
        n_head=4,
        n_positions=512,
        bos_token_id=ids["bos_token_id"],
        eos_token_id=ids["eos_token_id"],
        pad_token_id=ids["pad_token_id"],
    )


def _cfg_phi3(tok: PreTrainedTokenizerBase):
    from transformers import Phi3Config

    return Phi3Config(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        original_max_position_embeddings=512,
        sliding_window=None,
        **_tiny_common(tok),
    )


#: Tiny random test models: name -> config builder (called with the tiny tokenizer).
TINY: dict[str, Callable[[PreTrainedTokenizerBase], Any]] = {
    "tiny-random-llama": _cfg_llama,
    "tiny-random-llama-gqa": lambda tok: _cfg_llama(tok, kv_heads=2),
    "tiny-random-qwen2": _cfg_qwen2,
    "tiny-random-gemma2": _cfg_gemma2,
    "tiny-random-gpt2": _cfg_gpt2,
    "tiny-random-phi3": _cfg_phi3,
}
_TINY_SEED = 1234


def build_tiny(name: str) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """Build the tiny random model ``name`` (a key of :data:`TINY`) with its tokenizer.

    Example:
        >>> build_tiny("tiny-random-gpt2")[0].config.n_layer
        2
    """
    from transformers import AutoModelForCausalLM

    tok = tiny_tokenizer()
    config = TINY[name](tok)
    config._attn_implementation = "eager"
    config.name_or_path = name
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_TINY_SEED)
        model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    model.name_or_path = name
    return model, tok
