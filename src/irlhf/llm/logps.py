"""Log-probabilities of completions under a causal language model: the quantity every LM trainer here needs.

log pi(y | x) = sum_t log softmax(logits_{t-1})[y_t] over the completion tokens y_t only (prompt and padding
masked). Logits are shifted by one (position t-1 predicts token t). The log-softmax is taken in fp32 whatever
the model's dtype, and only at completion positions, in chunks of ``chunk_size`` positions: a bf16 model's
logits are never copied to fp32 all at once (with gradients, each chunk's fp32 copy is recomputed in the
backward pass instead of kept).

``sequence_logps`` goes further when it can: for a standard Hugging Face causal LM (logits = lm_head(final
hidden state), no soft-capping or scaling) it runs the backbone, gathers the hidden states of the positions
that predict completion tokens, and applies the LM head there only, chunk by chunk (recomputed in the backward
pass): the (B, T, vocabulary) logits of prompts and padding are never made. Other models go through their own
forward and the full logits.

Rows that share a prompt (a DPO pair's chosen and rejected, a GRPO group's G samples) share its computation
there too (``shared_prompts``): each distinct prompt runs once, its key/value cache is repeated for its rows, and
the completions run on top of it; gradients flow through the repeated cache into the one prompt pass. The
log-probs are those of the full pass up to float rounding.

    batch = collate_pairs(chosen, rejected, pad_id)      # irlhf.llm.tokenize
    logps = sequence_logps(model, batch)                 # (2B,) fp32; [:B] chosen, [B:] rejected
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

from irlhf.core.errors import ValidationError


def _chunk_logps(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    return logits.gather(-1, labels[:, None])[:, 0] - torch.logsumexp(logits, dim=-1)


def gather_logps(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0,
                 chunk_size: int = 1024) -> torch.Tensor:
    """log softmax(logits / temperature)[label] for N positions: logits (N, V), labels (N,) -> (N,) fp32."""
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ValidationError(f"gather_logps: logits {tuple(logits.shape)} and labels {tuple(labels.shape)}; "
                              "expected (N, V) and (N,)")
    if not temperature > 0:
        raise ValidationError(f"temperature={temperature!r}: expected > 0")
    recompute = logits.requires_grad and logits.dtype != torch.float32
    parts = []
    for start in range(0, len(labels), chunk_size):
        piece, target = logits[start:start + chunk_size], labels[start:start + chunk_size]
        if recompute:  # keep only the low-precision chunk for backward, not its fp32 copy
            parts.append(checkpoint(_chunk_logps, piece, target, temperature, use_reentrant=False))
        else:
            parts.append(_chunk_logps(piece, target, temperature))
    return torch.cat(parts) if parts else logits.new_zeros(0, dtype=torch.float32)


def completion_logps(logits: torch.Tensor, input_ids: torch.Tensor, completion_mask: torch.Tensor,
                     temperature: float = 1.0, chunk_size: int = 1024) -> torch.Tensor:
    """Per-token log-probs of the completion tokens: logits (B, T, V), input_ids (B, T), completion_mask (B, T)
    -> (B, T) fp32, entry t = log p(input_ids[t] | tokens < t) where completion_mask[t], else 0."""
    if logits.ndim != 3 or input_ids.shape != logits.shape[:2] or completion_mask.shape != input_ids.shape:
        raise ValidationError(f"completion_logps: logits {tuple(logits.shape)}, input_ids {tuple(input_ids.shape)}, "
                              f"completion_mask {tuple(completion_mask.shape)}; expected (B, T, V), (B, T), (B, T)")
    mask = completion_mask.bool().clone()
    mask[:, 0] = False  # the first token has no prediction
    rows, cols = mask.nonzero(as_tuple=True)
    values = gather_logps(logits[rows, cols - 1], input_ids[rows, cols], temperature, chunk_size)
    out = torch.zeros(input_ids.shape, dtype=torch.float32, device=logits.device)
    return out.index_put((rows, cols), values)


def forward_logits(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The model's logits (B, T, V) for a collated batch (right padding, attention mask)."""
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits


# config fields of models whose logits are not just lm_head(hidden): those take the full-logits path
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")


def backbone_and_head(model: Any) -> tuple[Any, Any] | None:
    """(backbone, lm_head) with logits = lm_head(backbone(...).last_hidden_state), or None if ``model`` is not
    such a Hugging Face causal LM (peft wrappers are looked through: their adapters live inside the modules)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    get_head = getattr(inner, "get_output_embeddings", None)
    prefix = getattr(inner, "base_model_prefix", None)
    head = get_head() if callable(get_head) else None
    backbone = getattr(inner, prefix, None) if isinstance(prefix, str) and prefix else None
    config = getattr(inner, "config", None)
    if head is None or backbone is None or backbone is inner or not isinstance(head, torch.nn.Linear):
        return None
    if any(getattr(config, name, None) not in (None, 1.0, 0.0) for name in _LOGIT_TRANSFORMS):
        return None
    return backbone, head


def _head_logps(hidden: torch.Tensor, labels: torch.Tensor, head: Any, temperature: float) -> torch.Tensor:
    return _chunk_logps(head(hidden), labels, temperature)


_CACHE_ARGS: dict[Any, str | None] = {}


def cache_argument(module: Any) -> str | None:
    """The name of ``module``'s forward argument that takes a KV cache, where that forward also takes
    attention_mask and position_ids (a Hugging Face decoder), else None. transformers 5.x calls it ``cache`` (the
    old name ``past_key_values`` warns from 5.25 on), 4.x ``past_key_values``."""
    forward = getattr(type(module), "forward", None)
    if forward not in _CACHE_ARGS:
        try:
            params = inspect.signature(forward).parameters
        except (TypeError, ValueError):
            params = {}
        name = next((name for name in ("cache", "past_key_values") if name in params), None)
        usable = name is not None and "attention_mask" in params and "position_ids" in params
        _CACHE_ARGS[forward] = name if usable else None
    return _CACHE_ARGS[forward]


def output_cache(output: Any) -> Any:
    """The KV cache a Hugging Face forward returned (None if none)."""
    cache = getattr(output, "cache", None)  # transformers >= 5.25 (reading past_key_values warns there)
    return cache if cache is not None else getattr(output, "past_key_values", None)


def cache_rows_selectable(cache: Any) -> bool:
    """Whether ``select_cache_rows`` can keep a subset (or repeats) of ``cache``'s batch rows."""
    if isinstance(cache, (tuple, list)):  # the legacy per-layer (key, value) tuples
        return all(isinstance(layer, (tuple, list)) and all(torch.is_tensor(t) for t in layer) for layer in cache)
    if not callable(getattr(cache, "batch_select_indices", None)):
        return False
    layers = getattr(cache, "layers", None)
    return layers is None or all(callable(getattr(layer, "batch_select_indices", None)) for layer in layers)


def select_cache_rows(cache: Any, index: torch.Tensor) -> Any:
    """``cache`` with batch rows ``index`` (in that order, repeats allowed; differentiable)."""
    if isinstance(cache, (tuple, list)):
        return tuple(tuple(t[index] for t in layer) for layer in cache)
    cache.batch_select_indices(index)
    return cache


# share prompts only where that saves at least this fraction of the batch's token positions: below it the second
# backbone call and the cache copy cost more than the prompt positions saved
MIN_SHARED_FRACTION = 0.1


@dataclasses.dataclass
class SharedPrompts:
    """A right-padded [prompt][completion][pad] batch split at the prompt/completion boundary, on its device.

    prompt_ids, prompt_mask (P, W) long: the P distinct prompts, left-padded (each ends at column W - 1);
    row_prompt (B,) long: each row's prompt; prompt_lengths (B,) long; completion_ids, completion_mask (B, C)
    long / bool: each row's completion, right-padded."""

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    row_prompt: torch.Tensor
    prompt_lengths: torch.Tensor
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor


def shared_prompts(input_ids: torch.Tensor, attention_mask: torch.Tensor, scored: torch.Tensor,
                   min_fraction: float | None = None) -> SharedPrompts | None:
    """The batch split into distinct prompts and completions (``SharedPrompts``) when rows repeat a prompt and
    the repeats hold at least ``min_fraction`` (None: ``MIN_SHARED_FRACTION``) of the batch's positions; None
    otherwise, or where the batch is not laid out [prompt][scored completion][pad] with a prompt of at least one
    token."""
    if min_fraction is None:
        min_fraction = MIN_SHARED_FRACTION
    n, width = input_ids.shape
    lengths = attention_mask.sum(1)
    scored = scored.bool()
    starts = scored.int().argmax(1)  # the first scored position: where the completion starts
    column = torch.arange(width, device=input_ids.device)[None]
    expected_scored = (column >= starts[:, None]) & (column < lengths[:, None])
    if (not bool((starts >= 1).all()) or not torch.equal(scored, expected_scored)
            or not torch.equal(attention_mask.bool(), column < lengths[:, None])):
        return None
    ids_rows, starts_list = input_ids.tolist(), starts.tolist()
    distinct: dict[tuple[int, ...], int] = {}
    row_prompt = [distinct.setdefault(tuple(ids[:start]), len(distinct)) for ids, start in zip(ids_rows, starts_list)]
    saved = sum(starts_list) - sum(len(prompt) for prompt in distinct)
    if saved < min_fraction * n * width or saved == 0:
        return None
    prompt_width = max(len(prompt) for prompt in distinct)
    prompt_ids = torch.zeros((len(distinct), prompt_width), dtype=torch.long)
    prompt_mask = torch.zeros((len(distinct), prompt_width), dtype=torch.long)
    for j, prompt in enumerate(distinct):
        prompt_ids[j, prompt_width - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
        prompt_mask[j, prompt_width - len(prompt):] = 1
    completion_lengths = lengths - starts
    completion_width = int(completion_lengths.max())
    offsets = torch.arange(completion_width, device=input_ids.device)[None]
    completion_mask = offsets < completion_lengths[:, None]
    gather_at = (starts[:, None] + offsets).clamp(max=width - 1)
    completion_ids = torch.where(completion_mask, input_ids.gather(1, gather_at), 0)
    device = input_ids.device
    return SharedPrompts(prompt_ids.to(device), prompt_mask.to(device),
                         torch.tensor(row_prompt, dtype=torch.long, device=device), starts, completion_ids,
                         completion_mask)


def _shared_prompt_states(backbone: Any, split: SharedPrompts) -> torch.Tensor | None:
    """The hidden states (B, C, H) that predict each row's completion tokens (entry j predicts completion token
    j: the prompt's last state for j = 0), with each distinct prompt run once; None where ``backbone`` cannot
    take a cache this way."""
    name = cache_argument(backbone)
    if name is None:
        return None
    prompt_positions = (split.prompt_mask.cumsum(1) - 1).clamp(min=0)
    try:
        prompt_out = backbone(input_ids=split.prompt_ids, attention_mask=split.prompt_mask,
                              position_ids=prompt_positions, use_cache=True)
    except TypeError:  # a forward that rejects these arguments after all
        return None
    cache = output_cache(prompt_out)
    if cache is None or not cache_rows_selectable(cache):
        return None
    cache = select_cache_rows(cache, split.row_prompt)
    index, n_completion = split.row_prompt, split.completion_ids.shape[1]
    mask = torch.cat([split.prompt_mask[index], split.completion_mask.long()], dim=1)
    positions = split.prompt_lengths[:, None] + torch.arange(n_completion, device=mask.device)[None]
    hidden = backbone(input_ids=split.completion_ids, attention_mask=mask, position_ids=positions, use_cache=True,
                      **{name: cache}).last_hidden_state
    first = prompt_out.last_hidden_state[:, -1][index]
    return torch.cat([first[:, None], hidden[:, :-1]], dim=1)


def head_logps_at(backbone: Any, head: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                  scored: torch.Tensor, temperature: float = 1.0, chunk_size: int = 1024
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The backbone over the batch, then the LM head only on the hidden states that predict the ``scored`` tokens
    (B, T) (every scored token after the first), ``chunk_size`` at a time (with gradients each chunk's logits are
    recomputed in the backward pass instead of kept). Rows that repeat a prompt share its pass (``shared_prompts``,
    module doc). Returns (rows, cols, log-probs), each (K,), K scored tokens."""
    split = shared_prompts(input_ids, attention_mask, scored)
    predicting = None if split is None else _shared_prompt_states(backbone, split)
    if predicting is not None:
        rows, offsets = split.completion_mask.nonzero(as_tuple=True)
        cols = split.prompt_lengths[rows] + offsets
        states, labels = predicting[rows, offsets], split.completion_ids[rows, offsets]
    else:
        if bool(attention_mask.all()):  # no padding: no mask, so attention takes its plain causal path (5-9% on CPU)
            attention_mask = None
        hidden = backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        mask = scored.bool().clone()
        mask[:, 0] = False  # the first token has no prediction
        rows, cols = mask.nonzero(as_tuple=True)
        states, labels = hidden[rows, cols - 1], input_ids[rows, cols]
    values = []
    for start in range(0, len(labels), chunk_size):
        piece, target = states[start:start + chunk_size], labels[start:start + chunk_size]
        if piece.requires_grad:  # keep the hidden chunk for backward, not its (chunk, vocabulary) logits
            values.append(checkpoint(_head_logps, piece, target, head, temperature, use_reentrant=False))
        else:
            values.append(_head_logps(piece, target, head, temperature))
    flat = torch.cat(values) if values else states.new_zeros(0, dtype=torch.float32)
    return rows, cols, flat


def sequence_logps(model: Any, batch: dict[str, torch.Tensor], temperature: float = 1.0,
                   chunk_size: int = 1024, whole: bool = False) -> torch.Tensor:
    """Summed completion log-probs log pi(y | x), (B,) fp32, one forward pass over the whole batch.

    ``batch``: input_ids (B, T), attention_mask (B, T), completion_mask (B, T) as made by
    ``irlhf.llm.tokenize.collate`` / ``collate_pairs``. The LM head runs at completion positions only when the
    model allows it (``backbone_and_head``); the result is the same either way up to float rounding.
    ``whole``: also score the prompt; returns (B, 2), column 0 the completion's sum as above and column 1 the sum
    over every token after the first (prompt and completion), from the same per-token log-probs.
    """
    missing = [k for k in ("input_ids", "attention_mask", "completion_mask") if k not in batch]
    if missing:
        raise ValidationError(f"sequence_logps: batch lacks {missing}; make it with irlhf.llm.tokenize.collate")
    if not temperature > 0:
        raise ValidationError(f"temperature={temperature!r}: expected > 0")
    parts = backbone_and_head(model)
    input_ids, completion_mask = batch["input_ids"], batch["completion_mask"]
    scored = batch["attention_mask"] if whole else completion_mask
    if parts is None:
        logits = forward_logits(model, batch)
        per_token = completion_logps(logits, input_ids, scored, temperature, chunk_size)
        if not whole:
            return per_token.sum(-1)
        return torch.stack([(per_token * completion_mask.to(per_token.dtype)).sum(-1), per_token.sum(-1)], dim=1)
    rows, cols, flat = head_logps_at(*parts, input_ids, batch["attention_mask"], scored, temperature, chunk_size)
    zeros = torch.zeros(len(input_ids), dtype=torch.float32, device=flat.device)
    if not whole:
        return zeros.index_add(0, rows, flat)
    answer = zeros.index_add(0, rows, flat * completion_mask[rows, cols].to(flat.dtype))
    return torch.stack([answer, zeros.index_add(0, rows, flat)], dim=1)
