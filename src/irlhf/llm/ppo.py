"""PPO-RLHF: fine-tune a causal LM against any reward, with a per-token KL penalty to a frozen reference.

Ziegler et al. (2019), Stiennon et al. (2020), Ouyang et al. (2022, InstructGPT), with the choices of "The N
implementation details of RLHF with PPO" (Huang et al. 2023). The objective (lecture 004, step 3):

    max_pi  E_{x ~ D, y ~ pi(.|x)} [ r(x, y) ]  -  beta * KL( pi(.|x) || pi_ref(.|x) )

One rollout (``rollout``):

    prompts (left-padded) --model.generate (sampling at ``temperature``, top_k=0, top_p=1)--> completions,
    cut after the first EOS; re-laid out right-padded [prompt][completion][pad] with a completion mask.
    logp_old = log softmax(logits / temperature) under pi, RECOMPUTED by a forward pass (not generate's scores);
    logp_ref = the same under pi_ref; values V_t; score = reward_fn(prompts, completion texts), minus
    ``missing_eos_penalty`` for a completion that did not end with EOS within ``max_new_tokens``.

Per-token reward (``per_token_rewards``): on every completion token  r_t = -beta * kl_t,  and the score is
added at the last completion token (the EOS token). kl_t is "k1" = log pi - log pi_ref, or "k3" =
(ratio - 1) - log ratio with ratio = pi_ref / pi (Schulman's unbiased, non-negative, low-variance estimator).

Advantages (``gae``): GAE(gamma, lambda) over the completion tokens only, returns = advantages + values,
advantages whitened over the batch (``whiten``, masked). Then ``ppo_epochs`` passes over shuffled minibatches of
``mini_batch_size`` sequences, minimising

    policy_loss  = mean_t max(-A_t ratio_t, -A_t clip(ratio_t, 1 - clip_range, 1 + clip_range))
    value_loss   = 0.5 mean_t max((V_t - R_t)^2, (V_old_t + clip(V_t - V_old_t, -vf_clip, vf_clip) - R_t)^2)
    loss         = policy_loss + vf_coef * value_loss - entropy_coef * entropy

(means over the minibatch's completion tokens). beta is fixed, or adapted after each rollout by Ziegler et
al.'s proportional controller (``AdaptiveKLController``): e = clip(KL / kl_target - 1, -0.2, 0.2),
beta <- beta (1 + kl_gain * e * n / kl_horizon), with n the sequences in the rollout.

Models. The value function V is a ``ValueHead`` (nn.Linear(hidden, 1)) on the policy's last hidden state:
policy and value SHARE the backbone (the value loss also trains it, weighted by ``vf_coef``). Pass
``value_model`` (a second causal LM, trained alongside) for a separate value network. pi_ref is a frozen deep
copy of the policy, or, for a peft model, the same model with its adapters disabled (no copy). Dropout is
off throughout (the models are kept in eval mode), so a minibatch's first ratio is exactly 1.

Processes: PPO runs in ONE process (no multi-process / DDP support; ``make_runtime`` only picks the device).

    result = train(model, tokenizer, prompts, reward_fn, Config(steps=100))
    result.model, result.value_head, result.history   # history rows: "objective/kl", "objective/scores", ...
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from irlhf.core.config import BaseConfig, check_bool, check_choice, check_number
from irlhf.core.errors import ValidationError, describe
from irlhf.core.io import atomic_open
from irlhf.llm.logps import completion_logps
from irlhf.llm.loop import adamw, check_finite_loss, make_runtime, save_checkpoint
from irlhf.llm.tokenize import pad_id_of, prompt_text, tokenizer_adds_bos

__all__ = ["Config", "Result", "Rollout", "ValueHead", "AdaptiveKLController", "kl_estimate", "per_token_rewards",
           "gae", "whiten", "masked_mean", "policy_loss", "value_loss", "encode_prompts", "rollout", "train"]

KL_ESTIMATORS = ("k1", "k3")
RewardFn = Callable[[Sequence[Any], Sequence[str]], Any]


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """Options of ``train`` (defaults in brackets; chosen to work for small models).

    steps [100]: rollouts (each followed by its PPO update).  batch_size [16]: prompts per rollout (prompts
    are drawn from successive seeded permutations, so fewer prompts than batch_size repeat).
    mini_batch_size [8]: sequences per gradient step.  ppo_epochs [4]: passes over each rollout.
    learning_rate [1e-5]: AdamW (raise it for tiny models, e.g. 1e-3).  weight_decay [0.0].
    max_new_tokens [32]: sampled tokens per completion (so a sequence has at most max_prompt_length +
    max_new_tokens tokens: there is no separate max_length).  temperature [1.0]: sampling temperature, also used
    for every log-prob (old, new, ref).  max_prompt_length [None]: prompts keep their last tokens (BOS kept).
    add_bos ["auto"]: prepend BOS to prompts ("auto" = as the tokenizer does).
    beta [0.05]: KL coefficient (initial value if adaptive_kl).  kl_estimator ["k1"]: or "k3" (per-token KL in
    the reward).  adaptive_kl [False]: Ziegler et al.'s controller.  kl_target [6.0]: target sequence KL
    (nats).  kl_horizon [10000]: controller horizon (sequences).  kl_gain [1.0]: K_beta.
    gamma [1.0]: discount.  lam [0.95]: GAE lambda.  clip_range [0.2]: policy ratio clip.  vf_clip [0.2]:
    value clip.  vf_coef [0.1]: value-loss weight.  entropy_coef [0.0]: entropy bonus.
    whiten_advantages [True]: normalise advantages over the rollout (masked).
    missing_eos_penalty [None]: subtracted from the score of completions without EOS (None = off).
    max_grad_norm [1.0]: gradient clipping (None = off).  seed [0].  log_every [1]: rollouts per history row
    (the last rollout is always logged).  save_steps [0]: checkpoint every so many rollouts (0 = only final).
    eval_steps [0]: evaluate on eval_prompts every so many rollouts (0 = only after training).
    progress [True]: a tqdm bar over rollouts.  device [None]: "cpu", "cuda", ... (None = cuda if available).
    """

    steps: int = 100
    batch_size: int = 16
    mini_batch_size: int = 8
    ppo_epochs: int = 4
    learning_rate: float = 1e-5
    weight_decay: float = 0.0
    max_new_tokens: int = 32
    temperature: float = 1.0
    max_prompt_length: int | None = None
    add_bos: bool | str = "auto"
    beta: float = 0.05
    kl_estimator: str = "k1"
    adaptive_kl: bool = False
    kl_target: float = 6.0
    kl_horizon: int = 10000
    kl_gain: float = 1.0
    gamma: float = 1.0
    lam: float = 0.95
    clip_range: float = 0.2
    vf_clip: float = 0.2
    vf_coef: float = 0.1
    entropy_coef: float = 0.0
    whiten_advantages: bool = True
    missing_eos_penalty: float | None = None
    max_grad_norm: float | None = 1.0
    seed: int = 0
    log_every: int = 1
    save_steps: int = 0
    eval_steps: int = 0
    progress: bool = True
    device: str | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "mini_batch_size", "ppo_epochs", "max_new_tokens", "kl_horizon",
                     "log_every"):
            check_number(name, getattr(self, name), low=1, integer=True)
        for name in ("save_steps", "eval_steps", "seed"):
            check_number(name, getattr(self, name), low=0, integer=True)
        if self.mini_batch_size > self.batch_size:
            raise ValidationError(f"mini_batch_size={self.mini_batch_size}: expected <= batch_size={self.batch_size}")
        for name in ("learning_rate", "temperature", "kl_target", "clip_range", "vf_clip"):
            check_number(name, getattr(self, name), low=0, low_open=True)
        for name in ("weight_decay", "beta", "kl_gain", "vf_coef", "entropy_coef"):
            check_number(name, getattr(self, name), low=0)
        check_number("gamma", self.gamma, low=0, high=1)
        check_number("lam", self.lam, low=0, high=1)
        if self.max_prompt_length is not None:
            check_number("max_prompt_length", self.max_prompt_length, low=1, integer=True)
        if self.missing_eos_penalty is not None:
            check_number("missing_eos_penalty", self.missing_eos_penalty)
        if self.max_grad_norm is not None:
            check_number("max_grad_norm", self.max_grad_norm, low=0, low_open=True)
        check_choice("add_bos", self.add_bos, ("auto", True, False))
        check_choice("kl_estimator", self.kl_estimator, KL_ESTIMATORS)
        for name in ("adaptive_kl", "whiten_advantages", "progress"):
            check_bool(name, getattr(self, name))
        if self.device is not None and not isinstance(self.device, str):
            raise ValidationError(f"device={self.device!r}: expected None or a device name such as 'cpu'")


@dataclasses.dataclass
class Result:
    """model: the trained policy; value_head: V's head (on the policy's hidden states, or on value_model's);
    value_model: the separate value network if one was given; history: one dict per logged rollout (and
    "eval/..." rows); beta: the final KL coefficient."""

    model: Any
    value_head: nn.Module
    history: list[dict[str, float]]
    beta: float
    value_model: Any = None


# ----------------------------------------------------------------------------------------------- the math


class ValueHead(nn.Module):
    """V(s_t) from a hidden state: (..., hidden) -> (...) fp32. Bias 0, weights N(0, 1/(hidden+1)) (N details)."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden_size, 1)
        nn.init.normal_(self.linear.weight, std=1.0 / math.sqrt(hidden_size + 1))
        nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(hidden.to(self.linear.weight.dtype)).squeeze(-1).float()


class AdaptiveKLController:
    """Ziegler et al. (2019): e = clip(KL / target - 1, -0.2, 0.2);  beta <- beta (1 + gain * e * n / horizon)."""

    def __init__(self, beta: float, target: float, horizon: int, gain: float = 1.0) -> None:
        self.beta, self.target, self.horizon, self.gain = float(beta), float(target), int(horizon), float(gain)

    def update(self, kl: float, n_steps: int) -> float:
        """Move beta after a rollout of ``n_steps`` sequences whose mean sequence KL was ``kl``; returns beta."""
        error = float(np.clip(kl / self.target - 1.0, -0.2, 0.2))
        self.beta *= 1.0 + self.gain * error * n_steps / self.horizon
        return self.beta


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token KL(pi || pi_ref) estimate from sampled-token log-probs (any shape, elementwise).

    "k1": log pi - log pi_ref (unbiased, can be negative).  "k3": (r - 1) - log r with r = pi_ref / pi
    (unbiased, always >= 0, about k1^2 / 2 for small differences).
    """
    check_choice("kl_estimator", estimator, KL_ESTIMATORS)
    log_ratio = logp - ref_logp
    if estimator == "k1":
        return log_ratio
    return torch.expm1(-log_ratio) + log_ratio  # (pi_ref/pi - 1) - log(pi_ref/pi)


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's last True entry: mask (B, T) bool -> (B,) long (every row needs one)."""
    if not bool(mask.any(-1).all()):
        raise ValidationError("completion_mask: a row has no completion token; expected at least one per row")
    positions = torch.arange(mask.shape[-1], device=mask.device)
    return torch.where(mask, positions, -1).amax(-1)


def per_token_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """r_t = -beta * kl_t on completion tokens, plus the sequence score at the last completion token.

    scores (B,) (after any missing-EOS penalty), kl (B, T) per-token KL estimates, mask (B, T) bool completion
    tokens -> (B, T) fp32, zero off the completion.
    """
    if kl.shape != mask.shape or scores.shape != kl.shape[:1]:
        raise ValidationError(f"per_token_rewards: scores {tuple(scores.shape)}, kl {tuple(kl.shape)}, mask "
                              f"{tuple(mask.shape)}; expected (B,), (B, T), (B, T)")
    rewards = torch.where(mask, -beta * kl.float(), 0.0)
    rows = torch.arange(len(scores), device=scores.device)
    rewards[rows, last_token_index(mask)] += scores.float()
    return rewards


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over the completion tokens: (B, T) each -> (advantages, returns).

    delta_t = r_t + gamma V_{t+1} - V_t, with V_{t+1} = 0 after the last completion token (the episode ends
    at EOS or at max_new_tokens); A_t = sum_{u >= t} (gamma lam)^(u - t) delta_u over the completion tokens;
    returns R_t = A_t + V_t. Entries off the mask are 0. Each row's completion tokens must be contiguous (one
    episode per row). Computed as one product with the (T, T) matrix of discounts (no loop over tokens).
    """
    if rewards.shape != values.shape or mask.shape != rewards.shape or rewards.ndim != 2:
        raise ValidationError(f"gae: rewards {tuple(rewards.shape)}, values {tuple(values.shape)}, mask "
                              f"{tuple(mask.shape)}; expected three equal (B, T) shapes")
    mask = mask.bool()
    starts = (mask[:, 1:] & ~mask[:, :-1]).sum(-1) + mask[:, 0]
    if bool((starts > 1).any()):
        row = int((starts > 1).nonzero()[0, 0])
        raise ValidationError(f"gae: mask row {row} has {int(starts[row])} separate runs of completion tokens; "
                              "expected one contiguous run per row")
    values = torch.where(mask, values, 0.0)
    next_values = torch.zeros_like(values)
    next_values[:, :-1] = values[:, 1:]  # 0 past the last completion token, since values are 0 off the mask
    deltas = torch.where(mask, rewards + gamma * next_values - values, 0.0)
    t = torch.arange(rewards.shape[1], device=rewards.device)
    lag = t[None, :] - t[:, None]  # lag[t, u] = u - t
    decay = torch.where(lag >= 0, (gamma * lam) ** lag.clamp(min=0).to(rewards.dtype), 0.0).to(rewards.dtype)
    advantages = torch.where(mask, deltas @ decay.T, 0.0)
    returns = torch.where(mask, advantages + values, 0.0)
    return advantages, returns


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x over mask's True entries (a 0-dim tensor)."""
    mask = mask.bool()
    return torch.where(mask, x, 0.0).sum() / mask.sum().clamp(min=1)


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps) with mean and (population) variance over mask's entries; 0 off the mask.
    shift_mean=False only rescales (keeps the mean)."""
    mask = mask.bool()
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return torch.where(mask, out, 0.0)


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                clip_range: float = 0.2) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate: mean_t max(-A ratio, -A clip(ratio, 1 +- clip_range)), ratio = exp(logp - old).

    All (B, T); returns (loss, {"approxkl": 0.5 mean (logp - old)^2, "clipfrac": share of tokens clipped}).
    """
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    stats = {"approxkl": masked_mean(0.5 * log_ratio.detach() ** 2, mask),
             "clipfrac": masked_mean((clipped > unclipped).float().detach(), mask)}
    return loss, stats


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               vf_clip: float = 0.2) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped value loss: 0.5 mean_t max((V - R)^2, (V_old + clip(V - V_old, +-vf_clip) - R)^2).

    All (B, T); returns (loss, {"clipfrac": share of tokens where the clipped term was larger})."""
    clipped_values = old_values + torch.clamp(values - old_values, -vf_clip, vf_clip)
    unclipped_loss = (values - returns) ** 2
    clipped_loss = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped_loss, clipped_loss), mask)
    return loss, {"clipfrac": masked_mean((clipped_loss > unclipped_loss).float().detach(), mask)}


# -------------------------------------------------------------------------------------------- the rollout


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


def _forward(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor,
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


def _reference_logps(model: Any, ref_model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                     completion_mask: torch.Tensor, temperature: float) -> torch.Tensor:
    if ref_model is None:  # a peft model: pi_ref is the base model, adapters off
        with model.disable_adapter():
            return _forward(model, input_ids, attention_mask, completion_mask, temperature)[0]
    return _forward(ref_model, input_ids, attention_mask, completion_mask, temperature)[0]


def _completion_text(tokenizer: Any, prompt_ids: list[int], completion_ids: list[int]) -> str:
    """The text the completion adds to the prompt: decode(prompt + completion) minus decode(prompt), so a word
    tokenizer's separating space is kept (decoding the completion alone would drop it: "was" + "great")."""
    prompt_text = tokenizer.decode(prompt_ids, skip_special_tokens=True)
    full_text = tokenizer.decode(prompt_ids + completion_ids, skip_special_tokens=True)
    if full_text.startswith(prompt_text):
        return full_text[len(prompt_text):]
    return tokenizer.decode(completion_ids, skip_special_tokens=True)


def _check_scores(raw: Any, n: int) -> np.ndarray:
    try:
        scores = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError(f"reward_fn returned {describe(raw)}; expected an array of {n} finite floats") from None
    if scores.shape != (n,):
        raise ValidationError(f"reward_fn returned shape {scores.shape}; expected ({n},), one score per completion")
    if not np.isfinite(scores).all():
        raise ValidationError(f"reward_fn returned non-finite scores {describe(scores)}; expected finite floats")
    return scores


@torch.no_grad()
def rollout(model: Any, tokenizer: Any, prompts: Sequence[Any], prompt_ids: Sequence[Sequence[int]],
            reward_fn: RewardFn, config: Config, *, ref_model: Any = None, value_head: nn.Module | None = None,
            value_model: Any = None, seed: int = 0) -> Rollout:
    """Sample one completion per prompt (seeded by ``seed``), score it, and compute old/ref log-probs and values.

    ``prompt_ids``: the prompts' token ids (``encode_prompts``). ``ref_model`` None means a peft model whose
    adapters are disabled for pi_ref. Without ``value_head`` the values are zeros.
    """
    from transformers import GenerationConfig

    device = next(model.parameters()).device
    pad_id, eos_id = pad_id_of(tokenizer), tokenizer.eos_token_id
    if eos_id is None:
        raise ValidationError("tokenizer: no eos_token; PPO stops completions at EOS")
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
        completions.append(_completion_text(tokenizer, list(ids), text_ids.tolist()))
    scores = torch.tensor(_check_scores(reward_fn(list(prompts), completions), n), dtype=torch.float32)
    penalised = scores.clone()
    if config.missing_eos_penalty is not None:
        penalised = torch.where(has_eos, scores, scores - config.missing_eos_penalty)
    input_ids, attention_mask, completion_mask = (x.to(device) for x in (input_ids, attention_mask, completion_mask))
    logps, values, _ = _forward(model, input_ids, attention_mask, completion_mask, config.temperature,
                                value_head, value_model)
    ref_logps = _reference_logps(model, ref_model, input_ids, attention_mask, completion_mask, config.temperature)
    if values is None:
        values = torch.zeros_like(logps)
    return Rollout(input_ids, attention_mask, completion_mask, logps, ref_logps, values, scores.to(device),
                   penalised.to(device), has_eos.to(device), completions)


# ------------------------------------------------------------------------------------------- the trainer


def _seed(*keys: int) -> int:
    """A torch seed for one named random stream (e.g. (seed, 0, step) for rollouts, (seed, 1) for eval)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0])


def _prompt_batches(n_prompts: int, batch_size: int, seed: int) -> Iterator[np.ndarray]:
    """Endless batches of prompt indices from successive seeded permutations (prompts repeat if few)."""
    buffer: list[int] = []
    epoch = 0
    while True:
        while len(buffer) < batch_size:
            buffer.extend(np.random.default_rng([seed, epoch]).permutation(n_prompts).tolist())
            epoch += 1
        yield np.array(buffer[:batch_size])
        buffer = buffer[batch_size:]


def _is_peft(model: Any) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


def _hidden_size(model: Any) -> int:
    config = model.config
    for name in ("hidden_size", "n_embd", "d_model"):
        if isinstance(getattr(config, name, None), int):
            return getattr(config, name)
    raise ValidationError(f"model: cannot find the hidden size in its config ({type(config).__name__})")


def _save(model: Any, value_head: nn.Module, value_model: Any, tokenizer: Any, path: Path) -> None:
    from safetensors.torch import save

    save_checkpoint(model, tokenizer, path)
    with atomic_open(path / "value_head.safetensors", "wb") as handle:
        handle.write(save({k: v.detach().cpu().contiguous() for k, v in value_head.state_dict().items()}))
    if value_model is not None:
        save_checkpoint(value_model, None, path / "value_model")


def _sequence_kl(batch: Rollout) -> torch.Tensor:
    """Sequence-level KL estimate sum_t k1 over the completion tokens, (B,)."""
    return torch.where(batch.completion_mask, batch.logps - batch.ref_logps, 0.0).sum(-1)


def train(model: Any, tokenizer: Any, prompts: Sequence[Any], reward_fn: RewardFn, config: Config | None = None,
          *, ref_model: Any = None, value_model: Any = None, output_dir: str | Path | None = None,
          eval_prompts: Sequence[Any] | None = None) -> Result:
    """PPO-RLHF (see module doc): ``steps`` rollouts of ``batch_size`` prompts, each followed by PPO epochs.

    model: a causal LM (transformers, or a peft model: then only its adapters train and pi_ref is the model with
    adapters disabled). prompts: strings or chat message lists. reward_fn(prompts, completions) -> (N,) floats.
    ref_model: pi_ref (default: a frozen copy of ``model``; ignored for peft models unless given).
    value_model: a separate causal LM for V (default: V shares the policy's backbone). output_dir: final
    checkpoint in output_dir/"final" (+ "step-{n}" every save_steps; value head as value_head.safetensors) and
    metrics.jsonl. eval_prompts: sampled and scored every eval_steps rollouts and after training ("eval/..."
    history rows).

    History rows (one per logged rollout; the PPO numbers are means over its minibatch updates):
    "objective/kl" mean over sequences of sum_t k1 (nats); "objective/per_token_kl" mean of the estimator used in
    the reward; "objective/scores" mean reward_fn score (before any missing-EOS penalty);
    "objective/rlhf_reward" mean of (penalised score - beta * sequence KL); "policy/approxkl" 0.5 mean
    (log ratio)^2; "policy/clipfrac"; "policy/entropy" (only with entropy_coef > 0); "loss/policy";
    "loss/value"; "val/clipfrac"; "beta" (the value used for this rollout); "completion_length" (tokens, EOS
    included); "eos_fraction".
    """
    config = config or Config()
    if not callable(reward_fn):
        raise ValidationError(f"reward_fn: {describe(reward_fn)}; expected a callable (prompts, completions) -> (N,)")
    prompt_ids = encode_prompts(tokenizer, prompts, config.max_prompt_length, config.add_bos)
    prompts = list(prompts)
    eval_ids = None if eval_prompts is None else encode_prompts(tokenizer, eval_prompts, config.max_prompt_length,
                                                                 config.add_bos)
    rt = make_runtime(config.device)
    if rt.world > 1:
        raise ValidationError(f"PPO runs in one process; it was launched with {rt.world} (use plain python)")
    torch.manual_seed(config.seed)
    if ref_model is None and not _is_peft(model):
        ref_model = copy.deepcopy(model).requires_grad_(False)
    if ref_model is not None:  # the caller's model keeps its requires_grad flags (it is only read under no_grad)
        ref_model = ref_model.to(rt.device).eval()
    value_head = ValueHead(_hidden_size(value_model if value_model is not None else model))
    modules = nn.ModuleDict({"policy": model, "value_head": value_head})
    if value_model is not None:
        modules["value_model"] = value_model
    modules, optimizer = rt.prepare(modules, adamw(modules, config.learning_rate, config.weight_decay))
    modules.eval()  # dropout off: the sampling policy and the first PPO pass see the same function
    model, value_head = modules["policy"], modules["value_head"]
    value_model = modules["value_model"] if value_model is not None else None
    trainable = [p for p in modules.parameters() if p.requires_grad]
    kl_controller = AdaptiveKLController(config.beta, config.kl_target, config.kl_horizon, config.kl_gain)
    shuffle = np.random.default_rng([config.seed, 1])
    metrics_file = None
    if output_dir is not None:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        metrics_file = open(Path(output_dir) / "metrics.jsonl", "w")
    history: list[dict[str, float]] = []

    def log(row: dict[str, float]) -> None:
        history.append(row)
        if metrics_file is not None:
            metrics_file.write(json.dumps(row) + "\n")
            metrics_file.flush()

    def evaluate(step: int) -> None:
        batch = rollout(model, tokenizer, eval_prompts, eval_ids, reward_fn, config, ref_model=ref_model,
                        seed=_seed(config.seed, 1))  # the same eval randomness every time
        log({"step": step, "eval/scores": float(batch.scores.mean()), "eval/kl": float(_sequence_kl(batch).mean()),
             "eval/completion_length": float(batch.completion_mask.sum(-1).float().mean()),
             "eval/eos_fraction": float(batch.has_eos.float().mean())})

    steps = range(config.steps)
    if config.progress:
        from tqdm.auto import tqdm
        steps = tqdm(steps, desc="ppo", unit="rollout")
    batches = _prompt_batches(len(prompt_ids), config.batch_size, config.seed)
    try:
        for step in steps:
            index = next(batches)
            beta = kl_controller.beta
            batch = rollout(model, tokenizer, [prompts[i] for i in index], [prompt_ids[i] for i in index],
                            reward_fn, config, ref_model=ref_model, value_head=value_head, value_model=value_model,
                            seed=_seed(config.seed, 0, step))
            mask = batch.completion_mask
            kl = kl_estimate(batch.logps, batch.ref_logps, config.kl_estimator)
            rewards = per_token_rewards(batch.penalised_scores, kl, mask, beta)
            advantages, returns = gae(rewards, batch.values, mask, config.gamma, config.lam)
            if config.whiten_advantages:
                advantages = whiten(advantages, mask)

            sums = {"policy/approxkl": 0.0, "policy/clipfrac": 0.0, "loss/policy": 0.0, "loss/value": 0.0,
                    "val/clipfrac": 0.0, "policy/entropy": 0.0}
            n_updates = 0
            for _ in range(config.ppo_epochs):
                order = torch.as_tensor(shuffle.permutation(config.batch_size), device=mask.device)
                for start in range(0, config.batch_size, config.mini_batch_size):
                    rows = order[start:start + config.mini_batch_size]
                    width = int(batch.attention_mask[rows].sum(-1).max())  # drop all-padding columns
                    mb_mask = mask[rows, :width]
                    logps, values, logits = _forward(model, batch.input_ids[rows, :width],
                                                     batch.attention_mask[rows, :width], mb_mask,
                                                     config.temperature, value_head, value_model)
                    pg_loss, pg_stats = policy_loss(logps, batch.logps[rows, :width], advantages[rows, :width],
                                                    mb_mask, config.clip_range)
                    vf_loss, vf_stats = value_loss(values, batch.values[rows, :width], returns[rows, :width],
                                                   mb_mask, config.vf_clip)
                    loss = pg_loss + config.vf_coef * vf_loss
                    if config.entropy_coef > 0:
                        # entropy of pi(.|s_t) at the completion positions (logits at t - 1 predict token t)
                        step_logits = (logits[:, :-1].float() / config.temperature)
                        entropy_t = torch.zeros_like(logps)
                        entropy_t[:, 1:] = torch.distributions.Categorical(logits=step_logits).entropy()
                        entropy = masked_mean(entropy_t, mb_mask)
                        loss = loss - config.entropy_coef * entropy
                        sums["policy/entropy"] += float(entropy.detach())
                    check_finite_loss(loss, step)
                    loss.backward()
                    if config.max_grad_norm is not None:
                        rt.clip_grad_norm(trainable, config.max_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    for name, value in (("policy/approxkl", pg_stats["approxkl"]),
                                        ("policy/clipfrac", pg_stats["clipfrac"]), ("loss/policy", pg_loss),
                                        ("loss/value", vf_loss), ("val/clipfrac", vf_stats["clipfrac"])):
                        sums[name] += float(value.detach())
                    n_updates += 1

            sequence_kl = _sequence_kl(batch)
            mean_kl = float(sequence_kl.mean())
            if config.adaptive_kl:
                kl_controller.update(mean_kl, config.batch_size)
            if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
                row = {"step": step + 1, "objective/kl": mean_kl, "objective/scores": float(batch.scores.mean()),
                       "objective/rlhf_reward": float((batch.penalised_scores - beta * sequence_kl).mean()),
                       "objective/per_token_kl": float(masked_mean(kl, mask)),
                       **{name: total / n_updates for name, total in sums.items()
                          if name != "policy/entropy" or config.entropy_coef > 0},
                       "beta": beta, "completion_length": float(mask.sum(-1).float().mean()),
                       "eos_fraction": float(batch.has_eos.float().mean())}
                log(row)
            if eval_ids is not None and config.eval_steps and (step + 1) % config.eval_steps == 0:
                evaluate(step + 1)
            if output_dir is not None and config.save_steps and (step + 1) % config.save_steps == 0:
                _save(model, value_head, value_model, tokenizer, Path(output_dir) / f"step-{step + 1}")
        if eval_ids is not None and not (config.eval_steps and config.steps % config.eval_steps == 0):
            evaluate(config.steps)
        if output_dir is not None:
            _save(model, value_head, value_model, tokenizer, Path(output_dir) / "final")
    finally:
        if metrics_file is not None:
            metrics_file.close()
    return Result(model=model, value_head=value_head, history=history, beta=kl_controller.beta,
                  value_model=value_model)
