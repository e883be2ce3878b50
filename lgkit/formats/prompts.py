"""Tokenisation of an example into prompt and response tokens.

Two conventions (docs/ARCHITECTURE.md, "Prompt/response convention"):

* ``default``: the prompt part and the response are tokenised separately and
  concatenated, so no token merges across the boundary and there is no second BOS.
  Base model: prompt part = prompt + "\\n" (with the tokenizer's special tokens).
  Instruct model: prompt part = chat template of [system, user] with the generation
  prompt (system omitted where the template has no system role). Truncation to
  ``max_length`` cuts the end of the response.
* ``layer_gradient``: the authors' procedure (arXiv 2410.23743 code):
  ``tokenizer.encode(whole_text, truncation=True, max_length=...)`` and the response
  start found as ``len(tokenizer.encode(text[:text.rfind(output)]))``; system prompt
  "You are a helpful assistant." except for models whose name contains "gemma".
* ``oda_nuclear`` / ``oda_rank``: OpenDataArena's NuclearNormScorer / EffectiveRankScorer
  (:mod:`lgkit.score.oda`): no chat template; stripped instruction (+ "\\n" + stripped
  input), then " " (nuclear) or "\\n" (rank), then the stripped output, tokenised whole
  with special tokens and cut at ``max_length``; the loss skips as many leading tokens
  as the prompt plus separator has when tokenised alone.

Example:
    >>> from lgkit.models import tiny_tokenizer
    >>> from lgkit.formats.records import Example
    >>> enc = encode_example(tiny_tokenizer(), Example("2+2?", "", "4"), instruct=False)
    >>> enc.n_response_tokens > 0
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lgkit.errors import InputError
from lgkit.formats.records import Example

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
COMPAT_MODES = (None, "layer_gradient", "oda_nuclear", "oda_rank")
ODA_SEPARATORS = {"oda_nuclear": " ", "oda_rank": "\n"}
"""OpenDataArena's two gradient scorers join prompt and response differently (lgkit.score.oda)."""


@dataclass
class Encoded:
    """Token ids of one example.

    Attributes:
        input_ids: prompt + response tokens (after truncation).
        n_prompt_tokens: tokens before the first response token.
        n_response_tokens: response tokens kept (those carrying the loss).
        truncated: whether ``max_length`` cut the sequence.
        n_prompt_untruncated: the prompt part's tokens before ``max_length`` cut anything
            (``n_prompt_tokens`` is at most ``max_length``); None: ``n_prompt_tokens``.

    Example:
        >>> Encoded([1, 2], 2, 0, True, n_prompt_untruncated=9).prompt_length
        9
    """

    input_ids: list[int]
    n_prompt_tokens: int
    n_response_tokens: int
    truncated: bool
    n_prompt_untruncated: int | None = None

    @property
    def prompt_length(self) -> int:
        """The prompt part's length in tokens before truncation (what a message should say)."""
        if self.n_prompt_untruncated is None:
            return self.n_prompt_tokens
        return self.n_prompt_untruncated


def has_chat_template(tokenizer: Any) -> bool:
    """Whether the tokenizer carries a chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def chat_prompt(
    tokenizer: Any, prompt: str, system_prompt: str | None = DEFAULT_SYSTEM_PROMPT
) -> str:
    """Render [system, user] with the generation prompt; drop system if unsupported.

    Raises:
        InputError: when the tokenizer has no chat template.
    """
    if not has_chat_template(tokenizer):
        raise InputError(
            f"the tokenizer of {getattr(tokenizer, 'name_or_path', '?')!r} has no chat template; "
            "run it as a base model (instruct=False / --base)",
            field="instruct",
        )
    user = [{"role": "user", "content": prompt}]
    if system_prompt:
        try:
            return tokenizer.apply_chat_template(
                [{"role": "system", "content": system_prompt}, *user],
                tokenize=False,
                add_generation_prompt=True,
            )
        except Exception:  # template without a system role (e.g. Gemma 2 raises)
            pass
    return tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)


def _ids(tokenizer: Any, text: str, special: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def encode_example(
    tokenizer: Any,
    example: Example,
    *,
    instruct: bool,
    max_length: int = 1024,
    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT,
    compat: str | None = None,
    model_name: str = "",
) -> Encoded:
    """Tokenise one example under the chosen convention.

    Args:
        tokenizer: a Hugging Face tokenizer.
        example: the record.
        instruct: use the chat template for the prompt part.
        max_length: maximum total tokens; the end of the response is cut.
        system_prompt: system message for instruct models (None: none).
        compat: None (lgkit convention) or ``"layer_gradient"`` (the authors').
        model_name: used by ``layer_gradient`` mode (no system prompt for Gemma).

    Raises:
        InputError: unknown compat mode, or no chat template for an instruct run.
    """
    if compat not in COMPAT_MODES:
        raise InputError(
            f"unknown compat mode {compat!r}; choose one of {', '.join(map(str, COMPAT_MODES))}",
            field="compat",
        )
    if compat in ODA_SEPARATORS:
        return _encode_oda(tokenizer, example, ODA_SEPARATORS[compat], max_length)
    if compat == "layer_gradient":
        return _encode_layer_gradient(
            tokenizer, example, instruct=instruct, max_length=max_length, model_name=model_name
        )
    if instruct:
        prompt_ids = _ids(
            tokenizer, chat_prompt(tokenizer, example.prompt, system_prompt), special=False
        )
    else:
        prompt_ids = _ids(tokenizer, example.prompt + "\n", special=True)
    resp_ids = _ids(tokenizer, example.output, special=False)
    ids = prompt_ids + resp_ids
    truncated = len(ids) > max_length
    ids = ids[:max_length]
    n_resp = max(0, len(ids) - len(prompt_ids))
    return Encoded(ids, len(prompt_ids), n_resp, truncated)


def _encode_layer_gradient(
    tokenizer: Any, example: Example, *, instruct: bool, max_length: int, model_name: str
) -> Encoded:
    prompt = example.prompt
    if instruct:
        if not has_chat_template(tokenizer):
            chat_prompt(tokenizer, prompt)  # raises the clear error
        if "gemma" in model_name.lower():
            messages = [{"role": "user", "content": prompt}]
        else:
            messages = [
                {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
                {"role": "user", "content": prompt},
            ]
        whole = (
            tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            + example.output
        )
    else:
        whole = prompt + "\n" + example.output
    ids = list(tokenizer.encode(whole, truncation=True, max_length=max_length))
    start = len(tokenizer.encode(whole[: whole.rfind(example.output)]))
    n_resp = max(0, len(ids) - start)
    truncated = len(tokenizer.encode(whole)) > len(ids)
    return Encoded(ids, min(start, len(ids)), n_resp, truncated, n_prompt_untruncated=start)


def _encode_oda(tokenizer: Any, example: Example, sep: str, max_length: int) -> Encoded:
    """OpenDataArena's joining: prompt + ``sep`` + output, prompt tokens counted alone."""
    prompt = example.instruction.strip()
    if example.input.strip():
        prompt += "\n" + example.input.strip()
    whole = prompt + sep + example.output.strip()
    full = _ids(tokenizer, whole, special=True)
    ids = full[:max_length]
    n_prompt = len(_ids(tokenizer, prompt + sep, special=True))
    start = min(n_prompt, max_length)
    return Encoded(ids, start, max(0, len(ids) - start), len(full) > len(ids), n_prompt)
