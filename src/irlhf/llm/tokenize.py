"""Tokenising prompt/completion pairs for language-model training, with the guards that matter.

A training example is one token sequence ``[BOS] prompt completion [EOS]`` and the index where the completion
starts; only completion tokens are scored (``completion_mask``).

- Boundary: the prompt and the completion are tokenised *jointly* (what the model reads), and the completion
  starts at the first token where the joint ids differ from the prompt's own ids. When a tokenizer merges
  characters across the boundary (BPE: "Hello" + "world" vs "Helloworld"), that merged token counts as
  completion, so no completion text is scored as prompt.
- Special tokens: BOS is prepended (``add_bos``; "auto" follows the tokenizer: it is added if
  ``tokenizer("x")`` adds it) and EOS appended (``add_eos``), each only when not already there, so a chat
  template that writes BOS itself never gives a doubled BOS.
- Chat: a prompt given as messages ``[{"role", "content"}, ...]`` goes through the tokenizer's chat template
  with the generation prompt; a tokenizer without a template refuses it.
- Truncation: the prompt keeps its last ``max_prompt_length`` tokens (BOS kept), then the completion is cut
  on the right to fit ``max_length``; an example whose completion would become empty is dropped and counted,
  never trained on as an empty completion.

    enc = encode(tokenizer, "the film was", " great", max_length=64)   # Encoded(input_ids, n_prompt) or None
    batch = collate_pairs(encoded_chosen, encoded_rejected, pad_id)     # chosen rows, then rejected rows
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import torch

from irlhf.core.config import BaseConfig, Check, PositiveInt
from irlhf.core.errors import ValidationError, describe
from irlhf.data.text import TextPairs


@dataclasses.dataclass(frozen=True)
class Encoded:
    """One sequence: ``input_ids`` (T,) ints; tokens ``[n_prompt:]`` are the completion (at least one)."""

    input_ids: tuple[int, ...]
    n_prompt: int

    @property
    def completion_ids(self) -> tuple[int, ...]:
        return self.input_ids[self.n_prompt:]


def _at_least_two(value: int) -> bool:
    return value >= 2


# field types shared by TokenizeOptions and the trainers' Configs
MaxLength = Annotated[int, Check(_at_least_two, ">= 2 (a prompt token and a completion token)")]
PromptLength = PositiveInt | None
AddBos = Literal["auto", True, False]  # prepend BOS: always, never, or as the tokenizer does ("auto")


@dataclasses.dataclass(frozen=True)
class TokenizeOptions(BaseConfig):
    """max_length [None]: total tokens; max_prompt_length [None]; add_bos ["auto"|True|False]; add_eos [True]."""

    max_length: MaxLength | None = None
    max_prompt_length: PromptLength = None
    add_bos: AddBos = "auto"
    add_eos: bool = True


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def tokenizer_adds_bos(tokenizer: Any) -> bool:
    """True if the tokenizer's own special-token handling prepends BOS (Llama-style; GPT-2 does not)."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    cached = _ADDS_BOS.get(id(tokenizer))
    if cached is not None and cached[0] is tokenizer and cached[1] == bos:
        return cached[2]
    ids = tokenizer("x", add_special_tokens=True)["input_ids"]
    adds = len(ids) > 0 and ids[0] == bos
    _ADDS_BOS[id(tokenizer)] = (tokenizer, bos, adds)
    return adds


_ADDS_BOS: dict[int, tuple[Any, int, bool]] = {}  # one probe per tokenizer: encode() runs per example


def prompt_text(tokenizer: Any, prompt: Any) -> str:
    """A string prompt as is; a list of chat messages rendered by the tokenizer's chat template."""
    if isinstance(prompt, str):
        return prompt
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValidationError("prompt: a list of chat messages, but the tokenizer has no chat template; "
                              "give plain-text prompts or a tokenizer with a chat_template")
    return tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)


def encode(tokenizer: Any, prompt: Any, completion: str, options: TokenizeOptions | None = None) -> Encoded | None:
    """Tokenise one prompt/completion pair (see module doc); None if truncation would empty the completion."""
    options = options or TokenizeOptions()
    if not isinstance(completion, str) or not completion:
        raise ValidationError(f"completion: {describe(completion)}; expected a non-empty string")
    text = prompt_text(tokenizer, prompt)
    prompt_ids = _ids(tokenizer, text)
    joint = _ids(tokenizer, text + completion)
    start = 0
    limit = min(len(prompt_ids), len(joint))
    while start < limit and prompt_ids[start] == joint[start]:
        start += 1
    ids, n_prompt = joint, start
    if len(ids) == n_prompt:  # the completion tokenised to nothing (e.g. only whitespace): nothing to score
        return None
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    add_bos = tokenizer_adds_bos(tokenizer) if options.add_bos == "auto" else options.add_bos
    if add_bos:
        if bos is None:
            raise ValidationError("add_bos=True but the tokenizer has no bos_token")
        if not ids or ids[0] != bos:
            ids, n_prompt = [bos] + ids, n_prompt + 1
    if options.add_eos:
        if eos is None:
            raise ValidationError("add_eos=True but the tokenizer has no eos_token")
        if ids[-1] != eos:
            ids = ids + [eos]
    prompt_part, completion_part = ids[:n_prompt], ids[n_prompt:]
    if not completion_part:
        return None
    keep_bos = 1 if add_bos else 0
    if options.max_prompt_length is not None and len(prompt_part) > options.max_prompt_length:
        tail = options.max_prompt_length - keep_bos
        prompt_part = prompt_part[:keep_bos] + (prompt_part[len(prompt_part) - tail:] if tail > 0 else [])
    if options.max_length is not None:
        room = options.max_length - len(prompt_part)
        if room < 1:
            return None
        completion_part = completion_part[:room]
    return Encoded(tuple(prompt_part + completion_part), len(prompt_part))


def encode_pairs(tokenizer: Any, pairs: TextPairs, options: TokenizeOptions | None = None
                 ) -> tuple[list[Encoded], list[Encoded], list[int]]:
    """Encode every pair; returns (chosen, rejected, kept row indices). Pairs where either side would have an
    empty completion are dropped; raises if none is left (the message gives the count and the limits)."""
    chosen, rejected, kept = [], [], []
    for k in range(len(pairs)):
        c = encode(tokenizer, pairs.prompt[k], pairs.chosen[k], options)
        r = encode(tokenizer, pairs.prompt[k], pairs.rejected[k], options)
        if c is not None and r is not None:
            chosen.append(c)
            rejected.append(r)
            kept.append(k)
    if not kept:
        options = options or TokenizeOptions()
        raise ValidationError(f"all {len(pairs)} pairs dropped: their prompts leave no room for a completion "
                              f"(max_length={options.max_length}, max_prompt_length={options.max_prompt_length})")
    return chosen, rejected, kept


def collate(items: Sequence[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch: input_ids (B, T) long, attention_mask (B, T) long, completion_mask (B, T) bool."""
    if not items:
        raise ValidationError("collate: no sequences")
    width = max(len(e.input_ids) for e in items)
    input_ids = torch.full((len(items), width), int(pad_id), dtype=torch.long)
    attention_mask = torch.zeros((len(items), width), dtype=torch.long)
    completion_mask = torch.zeros((len(items), width), dtype=torch.bool)
    for row, e in enumerate(items):
        n = len(e.input_ids)
        input_ids[row, :n] = torch.tensor(e.input_ids, dtype=torch.long)
        attention_mask[row, :n] = 1
        completion_mask[row, e.n_prompt:n] = True
    return {"input_ids": input_ids, "attention_mask": attention_mask, "completion_mask": completion_mask}


def collate_pairs(chosen: Sequence[Encoded], rejected: Sequence[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """One batch of 2B rows, chosen first (rows :B) then rejected (rows B:), for one forward pass over both."""
    if len(chosen) != len(rejected):
        raise ValidationError(f"collate_pairs: {len(chosen)} chosen and {len(rejected)} rejected; expected equal")
    return collate(list(chosen) + list(rejected), pad_id)


def pad_id_of(tokenizer: Any) -> int:
    """The tokenizer's pad id, else its EOS id (padding is masked out, so any id works)."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ValidationError("the tokenizer has neither a pad_token nor an eos_token; set tokenizer.pad_token")
    return int(pad)
