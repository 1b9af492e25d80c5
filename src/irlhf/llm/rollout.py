"""One PPO-RLHF rollout: sample a completion for each prompt, score it, and log-prob it under pi and pi_ref.

    prompts (left-padded) --sampling from softmax(logits / ``temperature``) (top_k=0, top_p=1)--> completions,
    cut after the first EOS; re-laid out right-padded [prompt][completion][pad] with a completion mask;
    logp_old(t) = log softmax(logits_{t-1} / temperature)[y_t] under pi, RECOMPUTED by a forward pass (not
    generate's scores); logp_ref(t) the same under pi_ref; V(s_t) from a ``ValueHead`` on the hidden state at
    t - 1; score = reward_fn(prompts, completion texts), minus ``missing_eos_penalty`` for a completion with no
    EOS within ``max_new_tokens``.

Used by :mod:`irlhf.llm.ppo` (Ziegler et al. 2019; Huang et al. 2023, "The N implementation details of RLHF
with PPO"). ``sample_completions`` (the sampling and layout alone) and ``token_logps`` (per-token log-probs with
the LM head at completion positions only) are also the parts :mod:`irlhf.llm.group_rollout` builds on.

Sampling is a KV-cache decode loop of its own (``_sample_tokens``), not ``model.generate``: the same distribution
and, until a row finishes, the same random draws, but each distinct prompt is prefilled once (a group's G rows
share it), a row that samples EOS leaves the batch (its cache rows too), and the cache fills preallocated buffers
instead of growing by concatenation; on the CPU the decoding steps multiply through oneDNN-prepacked weights
and run GPT-2's GELU fused (``irlhf.llm.decode_kernels``). Models it cannot drive (encoder-decoder,
prompt-learning peft, a forward without a cache argument) go through ``model.generate``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from irlhf.core.errors import ValidationError, describe
from irlhf.llm.decode_kernels import decode_kernels
from irlhf.llm.logps import (backbone_and_head, cache_argument, cache_rows_selectable, completion_logps,
                              head_logps_at, output_cache, select_cache_rows)
from irlhf.llm.loop import is_peft
from irlhf.llm.tokenize import pad_id_of, prompt_text, tokenizer_adds_bos

__all__ = ["RewardFn", "SamplingOptions", "ValueHead", "Rollout", "Samples", "encode_prompts", "check_room",
           "prepare_prompts", "frozen_reference", "policy_forward", "token_logps", "reference_logps", "completion_text",
           "check_scores", "sample_completions", "rollout"]

RewardFn = Callable[[Sequence[Any], Sequence[str]], Any]


class SamplingOptions(Protocol):
    """What ``rollout`` reads from its config (``irlhf.llm.ppo.Config`` has these fields)."""

    temperature: float
    max_new_tokens: int
    missing_eos_penalty: float | None


class ValueHead(nn.Module):
    """V(s_t) from a hidden state: (..., hidden) -> (...) fp32. Bias 0, weights N(0, 1/(hidden+1)) (N details)."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden_size, 1)
        nn.init.normal_(self.linear.weight, std=1.0 / math.sqrt(hidden_size + 1))
        nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(hidden.to(self.linear.weight.dtype)).squeeze(-1).float()


def encode_prompts(tokenizer: Any, prompts: Sequence[Any], max_prompt_length: int | None = None,
                   add_bos: bool | str = "auto") -> list[list[int]]:
    """Token ids of each prompt (chat messages through the template), BOS prepended per ``add_bos``, keeping
    the last ``max_prompt_length`` tokens (BOS kept)."""
    if isinstance(prompts, (str, bytes)) or not hasattr(prompts, "__len__") or len(prompts) == 0:
        raise ValidationError(f"prompts: {describe(prompts)}; expected a non-empty sequence of strings or "
                              "chat message lists")
    use_bos = tokenizer_adds_bos(tokenizer) if add_bos == "auto" else add_bos
    if use_bos and tokenizer.bos_token_id is None:
        raise ValidationError("add_bos=True but the tokenizer has no bos_token")
    encoded = []
    for k, prompt in enumerate(prompts):
        if not isinstance(prompt, (str, list, tuple)):
            raise ValidationError(f"prompts[{k}]: {describe(prompt)}; expected a string or a list of chat messages")
        ids = list(tokenizer(prompt_text(tokenizer, prompt), add_special_tokens=False)["input_ids"])
        if use_bos and (not ids or ids[0] != tokenizer.bos_token_id):
            ids = [tokenizer.bos_token_id] + ids
        if not ids:
            raise ValidationError(f"prompts[{k}]: {describe(prompt)} tokenises to no tokens; expected a non-empty "
                                  "prompt (or add_bos=True)")
        if max_prompt_length is not None and len(ids) > max_prompt_length:
            keep = 1 if use_bos else 0
            ids = ids[:keep] + ids[len(ids) - (max_prompt_length - keep):]
        encoded.append(ids)
    return encoded


def check_room(model: Any, prompt_ids: Sequence[Sequence[int]], max_new_tokens: int, what: str = "prompts") -> None:
    """Refuse prompts that leave no room for ``max_new_tokens`` sampled tokens within the model's positions
    (config.n_positions / max_position_embeddings; models without such a limit pass)."""
    config = getattr(model, "config", None)
    positions = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)
    longest = max((len(ids) for ids in prompt_ids), default=0)
    if isinstance(positions, int) and longest + max_new_tokens > positions:
        raise ValidationError(f"max_new_tokens={max_new_tokens}: the longest of the {what} has {longest} tokens and "
                              f"the model {positions} positions; expected max_new_tokens <= {positions - longest} "
                              "(or a max_prompt_length that leaves room)")


def prepare_prompts(model: Any, tokenizer: Any, prompts: Sequence[Any], eval_prompts: Sequence[Any] | None,
                    reward_fn: Any, config: Any) -> tuple[list[Any], list[list[int]], list[list[int]] | None]:
    """What every online trainer checks and encodes before training: ``reward_fn`` callable, the prompts and eval
    prompts encoded (``encode_prompts`` with config.max_prompt_length / add_bos) with room for config.max_new_tokens
    (``check_room``). Returns (prompts as a list, their ids, the eval prompts' ids or None)."""
    if not callable(reward_fn):
        raise ValidationError(f"reward_fn: {describe(reward_fn)}; expected a callable (prompts, completions) -> (N,)")
    prompt_ids = encode_prompts(tokenizer, prompts, config.max_prompt_length, config.add_bos)
    check_room(model, prompt_ids, config.max_new_tokens)
    eval_ids = None
    if eval_prompts is not None:
        eval_ids = encode_prompts(tokenizer, eval_prompts, config.max_prompt_length, config.add_bos)
        check_room(model, eval_ids, config.max_new_tokens, "eval prompts")
    return list(prompts), prompt_ids, eval_ids


def frozen_reference(model: Any, ref_model: Any, device: torch.device) -> Any:
    """pi_ref on ``device`` in eval mode: ``ref_model``, else a frozen copy of ``model`` as it is now (None for a peft
    model, whose adapters are disabled for pi_ref). The caller's ref_model keeps its requires_grad flags."""
    if ref_model is None and not is_peft(model):
        ref_model = copy.deepcopy(model).requires_grad_(False)
    return ref_model.to(device).eval() if ref_model is not None else None


@dataclasses.dataclass
class Rollout:
    """One batch of sampled completions, right-padded [prompt][completion][pad], all (B, T) unless noted.

    input_ids, attention_mask, completion_mask (bool); logps, ref_logps, values: per completion token (entry t
    = about token t given tokens < t; 0 elsewhere); scores (B,) reward_fn's scores; penalised_scores (B,)
    after missing_eos_penalty; has_eos (B,) bool; completions: the text each completion adds to its prompt
    (EOS excluded; a leading space kept), as passed to reward_fn.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    completion_mask: torch.Tensor
    logps: torch.Tensor
    ref_logps: torch.Tensor
    values: torch.Tensor
    scores: torch.Tensor
    penalised_scores: torch.Tensor
    has_eos: torch.Tensor
    completions: list[str]


def policy_forward(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor,
             temperature: float, value_head: nn.Module | None = None, value_model: Any = None
             ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """One forward pass: per-token log-probs (B, T) at ``temperature``, values (B, T) (entry t = V of the state
    before token t, from the hidden state at t - 1) or None, and the logits (B, T, V)."""
    need_hidden = value_head is not None and value_model is None
    out = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                output_hidden_states=need_hidden)
    logps = completion_logps(out.logits, input_ids, completion_mask, temperature)
    if value_head is None:
        return logps, None, out.logits
    if value_model is not None:
        hidden = value_model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                             output_hidden_states=True).hidden_states[-1]
    else:
        hidden = out.hidden_states[-1]
    values = torch.zeros_like(logps)
    values[:, 1:] = value_head(hidden[:, :-1])
    return logps, torch.where(completion_mask, values, 0.0), out.logits


def token_logps(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor,
                temperature: float, chunk_size: int = 1024) -> torch.Tensor:
    """Per-token completion log-probs (B, T) fp32 at ``temperature`` (entry t = log p(token t | tokens < t) where
    completion_mask, else 0), as ``policy_forward``'s first output but without the (B, T, vocabulary) logits: for
    a standard Hugging Face causal LM (``irlhf.llm.logps.backbone_and_head``) the LM head runs only on the hidden
    states that predict completion tokens, ``chunk_size`` positions at a time (with gradients, each chunk's logits
    are recomputed in the backward pass instead of kept). Other models go through ``policy_forward``."""
    parts = backbone_and_head(model)
    if parts is None:
        return policy_forward(model, input_ids, attention_mask, completion_mask, temperature)[0]
    rows, cols, flat = head_logps_at(*parts, input_ids, attention_mask, completion_mask, temperature, chunk_size)
    out = torch.zeros(input_ids.shape, dtype=torch.float32, device=flat.device)
    return out.index_put((rows, cols), flat)


def reference_logps(model: Any, ref_model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    completion_mask: torch.Tensor, temperature: float, head_at_completions: bool = False
                    ) -> torch.Tensor:
    """Per-token log-probs (B, T) under pi_ref: ``ref_model``, or (None) the peft ``model`` with its adapters
    disabled. ``head_at_completions``: through ``token_logps`` (no full logits) instead of ``policy_forward``."""
    forward = token_logps if head_at_completions else (lambda *args: policy_forward(*args)[0])
    if ref_model is None:  # a peft model: pi_ref is the base model, adapters off
        with model.disable_adapter():
            return forward(model, input_ids, attention_mask, completion_mask, temperature)
    return forward(ref_model, input_ids, attention_mask, completion_mask, temperature)


def completion_text(tokenizer: Any, prompt_ids: list[int], completion_ids: list[int]) -> str:
    """The text the completion adds to the prompt: decode(prompt + completion) minus decode(prompt), so a word
    tokenizer's separating space is kept (decoding the completion alone would drop it: "was" + "great")."""
    prompt_text = tokenizer.decode(prompt_ids, skip_special_tokens=True)
    full_text = tokenizer.decode(prompt_ids + completion_ids, skip_special_tokens=True)
    if full_text.startswith(prompt_text):
        return full_text[len(prompt_text):]
    return tokenizer.decode(completion_ids, skip_special_tokens=True)


def check_scores(raw: Any, n: int) -> np.ndarray:
    try:
        scores = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError(f"reward_fn returned {describe(raw)}; expected an array of {n} finite floats") from None
    if scores.shape != (n,):
        raise ValidationError(f"reward_fn returned shape {scores.shape}; expected ({n},), one score per completion")
    if not np.isfinite(scores).all():
        raise ValidationError(f"reward_fn returned non-finite scores {describe(scores)}; expected finite floats")
    return scores


@dataclasses.dataclass
class Samples:
    """Sampled completions laid out right-padded [prompt][completion][pad], on the model's device: input_ids,
    attention_mask (B, T) long; completion_mask (B, T) bool (EOS included); has_eos (B,) bool; completions: the
    text each completion adds to its prompt (EOS excluded; a leading space kept)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    completion_mask: torch.Tensor
    has_eos: torch.Tensor
    completions: list[str]


def _left_padded(prompt_ids: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask) (n, width) long, every prompt ending at the last column."""
    n, width = len(prompt_ids), max(len(ids) for ids in prompt_ids)
    ids_out = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    for row, ids in enumerate(prompt_ids):
        ids_out[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
        mask[row, width - len(ids):] = 1
    return ids_out, mask


def _takes_ready_mask(model: Any) -> bool:
    """Whether decoding may hand ``model`` its attention mask ready-made, (n, 1, 1, kv) bool with True = attend,
    sparing Hugging Face's per-step mask construction (~5% of a small model's decoding): a transformers model whose
    masking passes a 4-D mask through unchanged (transformers >= 5) running sdpa attention, which reads True as
    attend."""
    base = model.get_base_model() if callable(getattr(model, "get_base_model", None)) else model
    if not type(base).__module__.startswith("transformers.models."):
        return False
    if getattr(getattr(base, "config", None), "_attn_implementation", None) != "sdpa":
        return False
    try:
        from transformers import masking_utils  # why: optional (llm extra)
    except ImportError:
        return False
    return hasattr(masking_utils, "_preprocess_mask_arguments")


def _decode_arguments(model: Any) -> tuple[str, bool] | None:
    """(the name of the forward's KV-cache argument, whether it takes ``logits_to_keep``) where ``_sample_tokens``
    can drive ``model`` (a decoder-only causal LM, or a peft model around one, whose forward takes attention_mask,
    position_ids and a cache: ``logps.cache_argument``), else None."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "is_encoder_decoder", False):
        return None
    if getattr(getattr(model, "active_peft_config", None), "is_prompt_learning", False):
        return None  # prefix/prompt tuning: peft manages the cache itself
    base = model.get_base_model() if callable(getattr(model, "get_base_model", None)) else model
    name = cache_argument(base)
    if name is None:
        return None
    return name, "logits_to_keep" in inspect.signature(type(base).forward).parameters


def _preallocated(cache: Any, index: torch.Tensor | None, capacity: int) -> Any:
    """``cache`` with rows ``index`` (None: all) moved into buffers of ``capacity`` positions that decoding fills in
    place, where it is a plain ``DynamicCache`` of full-attention ``DynamicLayer``s (whose ``update`` concatenates:
    a fresh copy of the whole cache at every step, measured 10% of a medium model's decode time on one CPU thread);
    else None (the caller keeps the cache as it is)."""
    try:
        from transformers.cache_utils import DynamicCache, DynamicLayer  # why: optional (llm extra)
    except ImportError:
        return None
    layers = getattr(cache, "layers", None)
    if type(cache) is not DynamicCache or getattr(cache, "offloading", False) or not layers:
        return None
    if not all(type(layer) is DynamicLayer and getattr(layer, "is_initialized", False) and torch.is_tensor(layer.keys)
               and layer.keys.dim() == 4 and layer.keys.shape == layer.values.shape for layer in layers):
        return None
    buffer_layer = _buffer_layer_class()
    cache.layers = [buffer_layer.filled(layer.keys, layer.values, index, capacity) for layer in layers]
    cache.layer_class_to_replicate = None
    return cache


@functools.cache
def _buffer_layer_class() -> type:
    """A ``DynamicLayer`` whose keys and values live in preallocated (batch, heads, capacity, head_dim) buffers:
    ``update`` writes the new positions in place and returns views of the filled part; ``batch_select_indices``
    keeps rows (a row that sampled EOS leaves)."""
    from transformers.cache_utils import DynamicLayer  # why: optional (llm extra), slow to import

    class BufferLayer(DynamicLayer):
        @classmethod
        def filled(cls, keys: torch.Tensor, values: torch.Tensor, index: torch.Tensor | None, capacity: int
                   ) -> BufferLayer:
            """A layer holding ``keys`` and ``values`` (rows ``index`` of them; None: all), room for ``capacity``."""
            layer = cls()
            layer.lazy_initialization(keys, values)
            if index is not None:
                keys, values = keys[index], values[index]
            length = keys.shape[-2]
            layer.key_buffer = keys.new_empty(keys.shape[:2] + (max(capacity, length),) + keys.shape[3:])
            layer.value_buffer = values.new_empty(values.shape[:2] + (max(capacity, length),) + values.shape[3:])
            layer.key_buffer[:, :, :length] = keys
            layer.value_buffer[:, :, :length] = values
            layer._set_length(length)
            return layer

        def _grow(self, capacity: int) -> None:
            for name in ("key_buffer", "value_buffer"):
                old = getattr(self, name)
                new = old.new_empty(old.shape[:2] + (capacity,) + old.shape[3:])
                new[:, :, :self.length] = old[:, :, :self.length]
                setattr(self, name, new)
            self._set_length(self.length)

        def _set_length(self, length: int) -> None:
            self.length = length
            self.keys, self.values = self.key_buffer[:, :, :length], self.value_buffer[:, :, :length]

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
                   ) -> tuple[torch.Tensor, torch.Tensor]:
            start, stop = self.length, self.length + key_states.shape[-2]
            if stop > self.key_buffer.shape[-2]:  # not in sample_completions; grow rather than fail
                self._grow(max(stop, 2 * self.key_buffer.shape[-2]))
            self.key_buffer[:, :, start:stop] = key_states
            self.value_buffer[:, :, start:stop] = value_states
            self._set_length(stop)
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.length

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            self.key_buffer, self.value_buffer = self.key_buffer[indices], self.value_buffer[indices]
            self._set_length(self.length)

        def batch_repeat_interleave(self, repeats: int) -> None:
            rows = torch.arange(self.key_buffer.shape[0], device=self.key_buffer.device)
            self.batch_select_indices(rows.repeat_interleave(repeats))

        def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
            self.batch_select_indices(beam_idx.to(self.key_buffer.device))

        def crop(self, tokens_to_remove: int) -> None:
            if tokens_to_remove > 0:
                raise ValueError(f"crop({tokens_to_remove}): expected minus the number of tokens to remove")
            self._set_length(max(self.length + tokens_to_remove, 0))

        def reset(self) -> None:
            self._set_length(0)

    return BufferLayer


@torch.no_grad()
def _sample_tokens(model: Any, prompt_ids: Sequence[Sequence[int]], temperature: float, max_new_tokens: int,
                   eos_id: int, pad_id: int, *, with_logps: bool = False, preallocate: bool = True,
                   packed: bool = True) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """Sample up to ``max_new_tokens`` tokens after each prompt from softmax(logits / temperature) (no top-k,
    top-p or other processing) with the global RNG, stopping each row at its first EOS; None where this loop
    cannot drive ``model`` (``_decode_arguments``; a forward that raises TypeError on the prefill's arguments, or
    returns no cache, or one whose rows cannot be selected).

    Returns the sampled tokens (n, max_new_tokens) long on the CPU (a row's tokens after its first EOS are
    ``pad_id``) and, ``with_logps``, the log-probability (n, max_new_tokens) fp32 each token was drawn with (0
    after the row's end). A KV-cache decode loop: each distinct prompt is prefilled once and its cache rows
    repeated for its rows; a row that samples EOS leaves the batch (its cache rows too), so later steps run on the
    unfinished rows only. Prompts are left-padded, with position ids counted from the attention mask.
    ``preallocate``: decode into preallocated cache buffers where the cache allows it (``_preallocated``).
    ``packed``: the decoding steps (not the prefill) multiply through oneDNN-prepacked weights on the CPU and run
    GPT-2's GELU fused (``irlhf.llm.decode_kernels``; same fp32 arithmetic in another order, same tokens).
    """
    arguments = _decode_arguments(model)
    if arguments is None or max_new_tokens < 1:
        return None
    cache_name, keep_arg = arguments
    device = next(model.parameters()).device
    n = len(prompt_ids)
    distinct: dict[tuple[int, ...], int] = {}
    row_prompt = [distinct.setdefault(tuple(int(t) for t in ids), len(distinct)) for ids in prompt_ids]
    left_ids, left_mask = _left_padded([list(ids) for ids in distinct], pad_id)
    width = left_ids.shape[1]
    left_ids, left_mask = left_ids.to(device), left_mask.to(device)
    positions = (left_mask.cumsum(1) - 1).clamp(min=0)
    extra = {"logits_to_keep": 1} if keep_arg else {}
    try:
        output = model(input_ids=left_ids, attention_mask=left_mask, position_ids=positions, use_cache=True, **extra)
    except TypeError:  # a forward that rejects these arguments after all (model.generate then raises if it is not that)
        return None
    cache = output_cache(output)
    if cache is None or not cache_rows_selectable(cache):
        return None
    logits = output.logits[:, -1]
    index = torch.tensor(row_prompt, dtype=torch.long, device=device) if len(distinct) < n else None
    buffered = _preallocated(cache, index, width + max_new_tokens) if preallocate else None
    if buffered is not None:  # the rows of one prompt share its prefill (copied into each row's buffer)
        cache = buffered
    elif index is not None:
        cache = select_cache_rows(cache, index)
    if index is not None:
        logits, left_mask, positions = logits[index], left_mask[index], positions[index]
    mask = torch.ones((n, width + max_new_tokens), dtype=torch.long, device=device)
    mask[:, :width] = left_mask
    next_position = positions[:, -1:] + 1
    rows = torch.arange(n, device=device)  # the original row of each row still sampling
    tokens = torch.full((n, max_new_tokens), pad_id, dtype=torch.long, device=device)
    logps = torch.zeros((n, max_new_tokens), dtype=torch.float32, device=device) if with_logps else None
    if _takes_ready_mask(model):
        mask = mask[:, None, None, :].bool()
    with decode_kernels(model, n) if packed else contextlib.nullcontext():  # why: skinny products, small kernels
        for step in range(max_new_tokens):
            scores = logits.float()
            if temperature != 1.0:
                scores = scores / temperature
            token = torch.multinomial(torch.softmax(scores, dim=-1), 1).squeeze(1)
            tokens[rows, step] = token
            if logps is not None:
                logps[rows, step] = torch.log_softmax(scores, dim=-1).gather(1, token[:, None]).squeeze(1)
            if step == max_new_tokens - 1:
                break
            done = token == eos_id
            if bool(done.any()):  # finished rows leave the batch
                keep = (~done).nonzero().squeeze(1)
                if len(keep) == 0:
                    break
                rows, token, next_position, mask = rows[keep], token[keep], next_position[keep], mask[keep]
                cache = select_cache_rows(cache, keep)
            output = model(input_ids=token[:, None], attention_mask=mask[..., :width + step + 1],
                           position_ids=next_position, use_cache=True, **{cache_name: cache}, **extra)
            cache, logits = output_cache(output), output.logits[:, -1]
            next_position = next_position + 1
    return tokens.cpu(), logps


def _generate_tokens(model: Any, prompt_ids: Sequence[Sequence[int]], temperature: float, max_new_tokens: int,
                     eos_id: int, pad_id: int) -> torch.Tensor:
    """As ``_sample_tokens`` through ``model.generate`` (for models that loop cannot drive): (n, <= max_new) long."""
    from transformers import GenerationConfig  # why: optional (llm extra), slow to import

    device = next(model.parameters()).device
    left_ids, left_mask = _left_padded(prompt_ids, pad_id)
    generation = GenerationConfig(do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
                                  max_new_tokens=max_new_tokens, eos_token_id=eos_id, pad_token_id=pad_id)
    generated = model.generate(input_ids=left_ids.to(device), attention_mask=left_mask.to(device),
                               generation_config=generation)
    return generated[:, left_ids.shape[1]:].cpu()


@torch.no_grad()
def sample_completions(model: Any, tokenizer: Any, prompt_ids: Sequence[Sequence[int]], config: SamplingOptions,
                       *, seed: int = 0) -> Samples:
    """Sample one completion per row of ``prompt_ids`` (seeded by ``seed``; the global RNG is left alone), cut
    after the first EOS (a completion has at least one token), re-laid out right-padded (module doc).

    Sampling is from softmax(logits / temperature) (top_k=0, top_p=1) with a KV-cache decode loop
    (``_sample_tokens``: repeated prompts prefilled once, finished rows dropped from the batch); models it cannot
    drive (encoder-decoder, prompt-learning peft, a forward without a cache argument) go through
    ``model.generate``."""
    device = next(model.parameters()).device
    pad_id, eos_id = pad_id_of(tokenizer), tokenizer.eos_token_id
    if eos_id is None:
        raise ValidationError("tokenizer: no eos_token; completions stop at EOS")
    n = len(prompt_ids)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # seeded sampling that leaves the global RNG alone
        torch.manual_seed(seed)
        sampled = _sample_tokens(model, prompt_ids, config.temperature, config.max_new_tokens, eos_id, pad_id)
        if sampled is None:
            torch.manual_seed(seed)
            sampled = _generate_tokens(model, prompt_ids, config.temperature, config.max_new_tokens, eos_id, pad_id)
        else:
            sampled = sampled[0]
    # everything after the first EOS is padding; a completion has at least one token
    is_eos = sampled == eos_id
    has_eos = is_eos.any(-1)
    lengths = torch.where(has_eos, is_eos.float().argmax(-1) + 1, sampled.shape[1])
    total = max(len(ids) + int(k) for ids, k in zip(prompt_ids, lengths))
    input_ids = torch.full((n, total), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((n, total), dtype=torch.long)
    completion_mask = torch.zeros((n, total), dtype=torch.bool)
    completions = []
    for row, (ids, k) in enumerate(zip(prompt_ids, lengths.tolist())):
        p = len(ids)
        input_ids[row, :p] = torch.tensor(ids, dtype=torch.long)
        input_ids[row, p:p + k] = sampled[row, :k]
        attention_mask[row, :p + k] = 1
        completion_mask[row, p:p + k] = True
        text_ids = sampled[row, :k - 1] if bool(has_eos[row]) else sampled[row, :k]
        completions.append(completion_text(tokenizer, list(ids), text_ids.tolist()))
    return Samples(input_ids.to(device), attention_mask.to(device), completion_mask.to(device), has_eos.to(device),
                   completions)


@torch.no_grad()
def rollout(model: Any, tokenizer: Any, prompts: Sequence[Any], prompt_ids: Sequence[Sequence[int]],
            reward_fn: RewardFn, config: SamplingOptions, *, ref_model: Any = None, value_head: nn.Module | None = None,
            value_model: Any = None, seed: int = 0) -> Rollout:
    """Sample one completion per prompt (seeded by ``seed``), score it, and compute old/ref log-probs and values.

    ``prompt_ids``: the prompts' token ids (``encode_prompts``). ``ref_model`` None means a peft model whose
    adapters are disabled for pi_ref. Without ``value_head`` the values are zeros.
    """
    samples = sample_completions(model, tokenizer, prompt_ids, config, seed=seed)
    n, has_eos = len(prompt_ids), samples.has_eos
    scores = torch.tensor(check_scores(reward_fn(list(prompts), samples.completions), n), dtype=torch.float32,
                          device=has_eos.device)
    penalised = scores.clone()
    if config.missing_eos_penalty is not None:
        penalised = torch.where(has_eos, scores, scores - config.missing_eos_penalty)
    input_ids, attention_mask, completion_mask = samples.input_ids, samples.attention_mask, samples.completion_mask
    logps, values, _ = policy_forward(model, input_ids, attention_mask, completion_mask, config.temperature,
                                value_head, value_model)
    ref_logps = reference_logps(model, ref_model, input_ids, attention_mask, completion_mask, config.temperature)
    if values is None:
        values = torch.zeros_like(logps)
    return Rollout(input_ids, attention_mask, completion_mask, logps, ref_logps, values, scores, penalised, has_eos,
                   samples.completions)
