"""One PPO-RLHF rollout: sample a completion for each prompt, score it, and log-prob it under pi and pi_ref.

    prompts (left-padded) --model.generate (sampling at ``temperature``, top_k=0, top_p=1)--> completions,
    cut after the first EOS; re-laid out right-padded [prompt][completion][pad] with a completion mask;
    logp_old(t) = log softmax(logits_{t-1} / temperature)[y_t] under pi, RECOMPUTED by a forward pass (not
    generate's scores); logp_ref(t) the same under pi_ref; V(s_t) from a ``ValueHead`` on the hidden state at
    t - 1; score = reward_fn(prompts, completion texts), minus ``missing_eos_penalty`` for a completion with no
    EOS within ``max_new_tokens``.

Used by :mod:`irlhf.llm.ppo` (Ziegler et al. 2019; Huang et al. 2023, "The N implementation details of RLHF
with PPO"). ``sample_completions`` (the sampling and layout alone) and ``token_logps`` (per-token log-probs with
the LM head at completion positions only) are also the parts :mod:`irlhf.llm.group_rollout` builds on.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from irlhf.core.errors import ValidationError, describe
from irlhf.llm.logps import backbone_and_head, completion_logps, gather_logps
from irlhf.llm.tokenize import pad_id_of, prompt_text, tokenizer_adds_bos

__all__ = ["RewardFn", "SamplingOptions", "ValueHead", "Rollout", "Samples", "encode_prompts", "policy_forward",
           "token_logps", "reference_logps", "completion_text", "check_scores", "sample_completions", "rollout"]

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


def _head_logps(hidden: torch.Tensor, labels: torch.Tensor, head: Any, temperature: float) -> torch.Tensor:
    return gather_logps(head(hidden), labels, temperature, chunk_size=len(labels) or 1)


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
    backbone, head = parts
    hidden = backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    mask = completion_mask.bool().clone()
    mask[:, 0] = False  # the first token has no prediction
    rows, cols = mask.nonzero(as_tuple=True)
    states, labels = hidden[rows, cols - 1], input_ids[rows, cols]
    values = []
    for start in range(0, len(labels), chunk_size):
        piece, target = states[start:start + chunk_size], labels[start:start + chunk_size]
        if piece.requires_grad:
            values.append(checkpoint(_head_logps, piece, target, head, temperature, use_reentrant=False))
        else:
            values.append(_head_logps(piece, target, head, temperature))
    flat = torch.cat(values) if values else hidden.new_zeros(0, dtype=torch.float32)
    out = torch.zeros(input_ids.shape, dtype=torch.float32, device=hidden.device)
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


@torch.no_grad()
def sample_completions(model: Any, tokenizer: Any, prompt_ids: Sequence[Sequence[int]], config: SamplingOptions,
                       *, seed: int = 0) -> Samples:
    """Sample one completion per row of ``prompt_ids`` (seeded by ``seed``; the global RNG is left alone), cut
    after the first EOS (a completion has at least one token), re-laid out right-padded (module doc)."""
    from transformers import GenerationConfig  # why: optional (llm extra), slow to import

    device = next(model.parameters()).device
    pad_id, eos_id = pad_id_of(tokenizer), tokenizer.eos_token_id
    if eos_id is None:
        raise ValidationError("tokenizer: no eos_token; completions stop at EOS")
    n, width = len(prompt_ids), max(len(ids) for ids in prompt_ids)
    # left padding for generation: every prompt ends at the same column
    left_ids = torch.full((n, width), pad_id, dtype=torch.long)
    left_mask = torch.zeros((n, width), dtype=torch.long)
    for row, ids in enumerate(prompt_ids):
        left_ids[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
        left_mask[row, width - len(ids):] = 1
    generation = GenerationConfig(do_sample=True, temperature=config.temperature, top_k=0, top_p=1.0,
                                  max_new_tokens=config.max_new_tokens, eos_token_id=eos_id, pad_token_id=pad_id)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # seeded sampling that leaves the global RNG alone
        torch.manual_seed(seed)
        generated = model.generate(input_ids=left_ids.to(device), attention_mask=left_mask.to(device),
                                   generation_config=generation)
    sampled = generated[:, width:].cpu()
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
