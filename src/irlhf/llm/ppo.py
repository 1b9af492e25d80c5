"""PPO-RLHF: fine-tune a causal LM against any reward, with a per-token KL penalty to a frozen reference.

Objective (Ziegler et al. 2019; Stiennon et al. 2020; Ouyang et al. 2022, InstructGPT; lecture 004, step 3):

    max_pi  E_{x ~ D, y ~ pi(.|x)} [ r(x, y) ]  -  beta * KL( pi(.|x) || pi_ref(.|x) )

Per-token reward on the completion tokens of a rollout (:mod:`irlhf.llm.rollout`):

    r_t = -beta kl_t  (+ the sequence score at the last completion token)
    kl_t = log pi - log pi_ref ("k1")  or  (rho - 1) - log rho, rho = pi_ref / pi ("k3", Schulman's estimator)

Advantages A_t = GAE(gamma, lambda) over the completion tokens, returns R_t = A_t + V_t, A whitened over the
rollout. ``ppo_epochs`` passes over minibatches minimise (Schulman et al. 2017, means over completion tokens)

    policy_loss = mean_t max(-A_t rho_t, -A_t clip(rho_t, 1 - clip_range, 1 + clip_range)),  rho_t = pi / pi_old
    value_loss  = 0.5 mean_t max((V_t - R_t)^2, (V_old_t + clip(V_t - V_old_t, -vf_clip, vf_clip) - R_t)^2)
    loss        = policy_loss + vf_coef * value_loss - entropy_coef * entropy

beta is fixed, or adapted after each rollout (Ziegler et al.): e = clip(KL / kl_target - 1, -0.2, 0.2),
beta <- beta (1 + kl_gain e n / kl_horizon). Implementation choices follow Huang et al. (2023), "The N
implementation details of RLHF with PPO"; models, reference and processes are described in docs/llm.md.

    result = train(model, tokenizer, prompts, reward_fn, Config(steps=100))
    result.model, result.value_head, result.history   # history rows: "objective/kl", "objective/scores", ...
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from safetensors.torch import save
from torch import nn
from tqdm.auto import tqdm

from irlhf.core.config import (BaseConfig, Fraction, NonNegative, NonNegativeInt, Positive, PositiveInt, Seed,
                               check_choice)
from irlhf.core.errors import ValidationError
from irlhf.core.io import atomic_open
from irlhf.llm.loop import (Device, MaxGradNorm, Runtime, adamw, check_finite_loss, make_runtime,
                            save_checkpoint)
from irlhf.llm.rollout import (RewardFn, Rollout, ValueHead, encode_prompts, frozen_reference, policy_forward,
                               prepare_prompts, rollout)
from irlhf.llm.tokenize import AddBos, PromptLength

__all__ = ["Config", "Result", "Rollout", "ValueHead", "AdaptiveKLController", "kl_estimate", "per_token_rewards",
           "gae", "whiten", "masked_mean", "policy_loss", "value_loss", "encode_prompts", "rollout", "train"]
# Rollout, ValueHead, encode_prompts and rollout live in irlhf.llm.rollout; imported here, they stay ppo.* names.

KLEstimator = Literal["k1", "k3"]
KL_ESTIMATORS = typing.get_args(KLEstimator)


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

    steps: PositiveInt = 100
    batch_size: PositiveInt = 16
    mini_batch_size: PositiveInt = 8
    ppo_epochs: PositiveInt = 4
    learning_rate: Positive = 1e-5
    weight_decay: NonNegative = 0.0
    max_new_tokens: PositiveInt = 32
    temperature: Positive = 1.0
    max_prompt_length: PromptLength = None
    add_bos: AddBos = "auto"
    beta: NonNegative = 0.05
    kl_estimator: KLEstimator = "k1"
    adaptive_kl: bool = False
    kl_target: Positive = 6.0
    kl_horizon: PositiveInt = 10000
    kl_gain: NonNegative = 1.0
    gamma: Fraction = 1.0
    lam: Fraction = 0.95
    clip_range: Positive = 0.2
    vf_clip: Positive = 0.2
    vf_coef: NonNegative = 0.1
    entropy_coef: NonNegative = 0.0
    whiten_advantages: bool = True
    missing_eos_penalty: float | None = None
    max_grad_norm: MaxGradNorm = 1.0
    seed: Seed = 0
    log_every: PositiveInt = 1
    save_steps: NonNegativeInt = 0
    eval_steps: NonNegativeInt = 0
    progress: bool = True
    device: Device = None

    def validate(self) -> None:
        if self.mini_batch_size > self.batch_size:
            raise ValidationError(f"mini_batch_size={self.mini_batch_size}: expected <= batch_size={self.batch_size}")


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


def _hidden_size(model: Any) -> int:
    config = model.config
    for name in ("hidden_size", "n_embd", "d_model"):
        if isinstance(getattr(config, name, None), int):
            return getattr(config, name)
    raise ValidationError(f"model: cannot find the hidden size in its config ({type(config).__name__})")


def _save(model: Any, value_head: nn.Module, value_model: Any, tokenizer: Any, path: Path) -> None:

    save_checkpoint(model, tokenizer, path)
    with atomic_open(path / "value_head.safetensors", "wb") as handle:
        handle.write(save({k: v.detach().cpu().contiguous() for k, v in value_head.state_dict().items()}))
    if value_model is not None:
        save_checkpoint(value_model, None, path / "value_model")


def _sequence_kl(batch: Rollout) -> torch.Tensor:
    """Sequence-level KL estimate sum_t k1 over the completion tokens, (B,)."""
    return torch.where(batch.completion_mask, batch.logps - batch.ref_logps, 0.0).sum(-1)


STATS = ("policy/approxkl", "policy/clipfrac", "loss/policy", "loss/value", "val/clipfrac", "policy/entropy")


def _ppo_update(batch: Rollout, advantages: torch.Tensor, returns: torch.Tensor, config: Config, model: Any,
                value_head: nn.Module, value_model: Any, optimizer: torch.optim.Optimizer,
                trainable: list[torch.nn.Parameter], rt: Runtime, shuffle: np.random.Generator, step: int
                ) -> dict[str, float]:
    """``ppo_epochs`` passes over shuffled minibatches of one rollout; returns the mean of each of STATS over the
    minibatch updates ("policy/entropy" only with entropy_coef > 0). One finiteness check (``check_finite_loss``)
    and one transfer of the logged numbers per minibatch."""
    mask = batch.completion_mask
    totals = [0.0] * len(STATS)
    n_updates = 0
    for _ in range(config.ppo_epochs):
        order = torch.as_tensor(shuffle.permutation(config.batch_size), device=mask.device)
        for start in range(0, config.batch_size, config.mini_batch_size):
            rows = order[start:start + config.mini_batch_size]
            width = int(batch.attention_mask[rows].sum(-1).max())  # drop all-padding columns
            mb_mask = mask[rows, :width]
            logps, values, logits = policy_forward(model, batch.input_ids[rows, :width],
                                                   batch.attention_mask[rows, :width], mb_mask, config.temperature,
                                                   value_head, value_model)
            pg_loss, pg_stats = policy_loss(logps, batch.logps[rows, :width], advantages[rows, :width], mb_mask,
                                            config.clip_range)
            vf_loss, vf_stats = value_loss(values, batch.values[rows, :width], returns[rows, :width], mb_mask,
                                           config.vf_clip)
            loss = pg_loss + config.vf_coef * vf_loss
            entropy = torch.zeros((), device=loss.device)
            if config.entropy_coef > 0:
                # entropy of pi(.|s_t) at the completion positions (logits at t - 1 predict token t)
                step_logits = (logits[:, :-1].float() / config.temperature)
                entropy_t = torch.zeros_like(logps)
                entropy_t[:, 1:] = torch.distributions.Categorical(logits=step_logits).entropy()
                entropy = masked_mean(entropy_t, mb_mask)
                loss = loss - config.entropy_coef * entropy
            check_finite_loss(loss, step)
            loss.backward()
            if config.max_grad_norm is not None:
                rt.clip_grad_norm(trainable, config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            stats = torch.stack([pg_stats["approxkl"], pg_stats["clipfrac"], pg_loss, vf_loss, vf_stats["clipfrac"],
                                 entropy]).detach().float().tolist()
            totals = [total + value for total, value in zip(totals, stats)]
            n_updates += 1
    return {name: total / n_updates for name, total in zip(STATS, totals)
            if name != "policy/entropy" or config.entropy_coef > 0}


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
    prompts, prompt_ids, eval_ids = prepare_prompts(model, tokenizer, prompts, eval_prompts, reward_fn, config)
    rt = make_runtime(config.device)
    if rt.world > 1:
        raise ValidationError(f"PPO runs in one process; it was launched with {rt.world} (use plain python)")
    torch.manual_seed(config.seed)
    ref_model = frozen_reference(model, ref_model, rt.device)
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

            means = _ppo_update(batch, advantages, returns, config, model, value_head, value_model, optimizer,
                                trainable, rt, shuffle, step)

            sequence_kl = _sequence_kl(batch)
            mean_kl = float(sequence_kl.mean())
            if config.adaptive_kl:
                kl_controller.update(mean_kl, config.batch_size)
            if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
                row = {"step": step + 1, "objective/kl": mean_kl, "objective/scores": float(batch.scores.mean()),
                       "objective/rlhf_reward": float((batch.penalised_scores - beta * sequence_kl).mean()),
                       "objective/per_token_kl": float(masked_mean(kl, mask)),
                       **means,
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
