"""Sequence-level MaxEnt IRL for language models: guided cost learning (GCL) over whole completions.

The model (Ziebart et al. 2008, "Maximum entropy inverse reinforcement learning"; lecture note
``seeds/003``): a demonstrator answers prompt x with completion y with probability proportional to the
exponentiated reward of the whole sequence,

    P_phi(y | x) = exp R_phi(x, y) / Z(R_phi, x),        Z(R_phi, x) = sum_y exp R_phi(x, y),

and the reward R_phi (a sequence-classification LM, :mod:`irlhf.llm.reward`) is fitted by maximum likelihood
on demonstrations (x, y_E):

    L_R(phi) = mean_x [ -R_phi(x, y_E) + log Z(R_phi, x) ]
    grad L_R = -grad R_phi(x, y_E) + E_{y ~ P_phi}[ grad R_phi(x, y) ].

Z sums over every token sequence, so it is estimated by importance sampling from an easy-to-sample proposal,
the current policy q (Finn, Levine, Abbeel 2016, "Guided cost learning", eq. 3-4): draw y_1..y_K ~ q(.|x) and,
as GCL does, add the demonstration to the set {y_1, .., y_K, y_E} (so the estimate never misses the demo).
GCL weights every member of the set by the fused density of all the distributions the set was drawn from; here
K draws from q and one from the demonstrator, whose density at this prompt is the point mass on y_E
(``demo_proposal="fused"``, the default; multiple importance sampling with the balance heuristic, Veach and
Guibas 1995, unbiased):

    q_bar(y) = (K q(y|x) + [y = y_E]) / (K + 1)                                        (fused_log_proposal)
    log Z_hat = logsumexp_j (R_phi(x, y_j) - log q_bar(y_j)) - log(K + 1)  over the K + 1   (log_partition)
              = log sum_j exp R_phi(x, y_j) / (K q(y_j|x) + [y_j = y_E])

whose gradient is the self-normalised weighted mean sum_j w_j grad R(x, y_j), w = softmax_j(R_j - log q_bar_j).
``demo_proposal="policy"`` instead weighs the demonstration by q(y_E|x) alone, as if q had drawn it: when q
gives the demonstration little probability its weight exp(R_E) / q(y_E|x) dwarfs the samples', log Z_hat -
R(x, y_E) ~ -log q(y_E|x) no longer depends on R, and the reward stops learning (measured: docs/RESULTS.md).
The weights' effective sample size ESS = (sum w)^2 / sum w^2 (in [1, K+1]) says how many samples the estimate
really uses; when it is near 1 for most prompts the estimate has collapsed onto one sample (usually the demo:
q is far from P_phi). That is reported every step and warned about once, never hidden.

The proposal is improved towards P_phi (GCL's policy step) by maximising the learnt reward under a KL penalty
to pi_ref (the frozen starting model): max_pi E_{y~pi}[R_phi(x, y)] - beta KL(pi || pi_ref), whose optimum is
pi* proportional to pi_ref exp(R_phi / beta) (``kl_regularised_optimum``; = P_phi when beta = 1 and pi_ref
uniform). The step is REINFORCE with the leave-one-out baseline (RLOO; Kool et al. 2019, Ahmadian et al. 2024)
on the K samples just drawn, which are on-policy for q:

    s_k = R_phi(x, y_k) - beta (log q(y_k|x) - log pi_ref(y_k|x))      (no gradient, reward after its update)
    A_k = s_k - mean_{j != k} s_j                                       (rloo_advantages)
    L_pi = -mean_x mean_k A_k log pi(y_k | x)                            (one gradient step; pi == q when sampled)

Why RLOO and not PPO here: it reuses the K samples the partition estimate already drew (no extra rollout),
needs no value head, and runs under accelerate's processes like the reward step (irlhf's PPO runs in one
process). Log-probs are sums over completion tokens at the sampling ``temperature`` (fp32 log-softmax).

Processes: every process draws the same global batch of demonstrations and takes its share (``loop.shard``);
losses are global means (``loop.global_mean``), so the updates equal a one-process run on the same samples.
Each process samples its own prompts' completions with its own seed, so samples (not the estimator) differ
between a 1- and an N-process run.

    result = train(sft_model, tokenizer, [{"prompt": ..., "completion": ...}, ...], Config(steps=200))
    result.model, result.reward_model, result.history      # rows: "reward/loss", "ess", "policy/kl", ...
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import types
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from irlhf.core.config import BaseConfig, NonNegative, NonNegativeInt, Positive, PositiveInt, Range, Seed
from irlhf.core.errors import ValidationError
from irlhf.llm.logps import sequence_logps
from irlhf.llm.loop import (Device, MaxGradNorm, adamw, check_finite_loss, global_batches, global_mean, is_peft,
                            make_runtime, save_checkpoint, shard)
from irlhf.llm.reward import RewardModel, make_reward_model
from irlhf.llm.rollout import rollout
from irlhf.llm.sft import load_sft_data
from irlhf.llm.tokenize import AddBos, Encoded, MaxLength, PromptLength, TokenizeOptions, collate, encode, pad_id_of

__all__ = ["log_partition", "fused_log_proposal", "maxent_loss", "effective_sample_size", "kl_regularised_optimum", "rloo_advantages",
           "Config", "Result", "train"]


# -- the math (pure functions; no validation: train validates at its edge) ---------------------------
def log_partition(rewards: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Importance-sampling estimate of log Z(R, x) = log sum_y exp R(x, y) from K samples y_k ~ q(.|x).

    rewards (B, K): R(x, y_k).  log_q (B, K): log q(y_k | x), the log-probability of each sample under the
    proposal.  Returns (B,): log Z_hat = logsumexp_k(R_k - log q_k) - log K, since Z = E_{y~q}[exp R(x,y) / q(y|x)].
    Exact when the K samples are the whole support, each once, and log_q = -log K (a uniform proposal).
    """
    return torch.logsumexp(rewards - log_q, dim=-1) - math.log(rewards.shape[-1])


def fused_log_proposal(log_q: torch.Tensor, is_demo: torch.Tensor) -> torch.Tensor:
    """log q_bar of every member of the importance set under GCL's fused proposal: K draws from q and one from
    the demonstrator (a point mass on y_E). log_q (B, K + 1): log q(y_j | x); is_demo (B, K + 1) bool: y_j = y_E
    (always true in the demonstration's own column). Returns (B, K + 1) = log((K q_j + [y_j = y_E]) / (K + 1))."""
    k = log_q.shape[-1] - 1
    log_point = torch.where(is_demo, 0.0, -math.inf).to(log_q.dtype)
    return torch.logaddexp(log_q + math.log(k), log_point) - math.log(k + 1)


def maxent_loss(demo_rewards: torch.Tensor, log_z: torch.Tensor) -> torch.Tensor:
    """Per-prompt negative log-likelihood of the demonstration under P(y|x) = exp R(x,y) / Z(R,x):
    demo_rewards (B,) = R(x, y_E), log_z (B,) = log Z_hat -> (B,) = -R(x, y_E) + log Z_hat.

    Its gradient is -grad R(x, y_E) + sum_k w_k grad R(x, y_k) with self-normalised weights
    w_k = softmax_k(R_k - log q_k) (lecture 003; Finn et al. 2016, eq. 3)."""
    return log_z - demo_rewards


def effective_sample_size(log_w: torch.Tensor) -> torch.Tensor:
    """Kish's effective sample size of importance weights given in log space: log_w (B, K) -> (B,) =
    (sum_k w_k)^2 / sum_k w_k^2, computed as exp(2 logsumexp(log_w) - logsumexp(2 log_w)). K for equal weights,
    1 when one weight dominates."""
    return torch.exp(2 * torch.logsumexp(log_w, dim=-1) - torch.logsumexp(2 * log_w, dim=-1))


def kl_regularised_optimum(ref_logps: torch.Tensor, rewards: torch.Tensor, beta: float) -> torch.Tensor:
    """log pi*(y|x) of the KL-regularised optimum pi* = argmax E_pi[R] - beta KL(pi || pi_ref), i.e.
    pi* proportional to pi_ref exp(R / beta), normalised over the given support (the last axis).
    ref_logps, rewards (..., K) -> (..., K)."""
    return torch.log_softmax(ref_logps + rewards / beta, dim=-1)


def rloo_advantages(scores: torch.Tensor) -> torch.Tensor:
    """Leave-one-out advantages: scores (B, K) -> (B, K), A_k = s_k - mean_{j != k} s_j (K >= 2). Each row sums
    to zero; A_k = K / (K - 1) (s_k - mean_j s_j)."""
    k = scores.shape[-1]
    return scores - (scores.sum(-1, keepdim=True) - scores) / (k - 1)


# -- config and result -------------------------------------------------------------------------------
AtLeastTwo = Annotated[int, Range(2)]


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """Options of ``train`` (defaults in brackets).

    steps [100]: reward updates (each on fresh samples).  batch_size [8]: demonstrations per GLOBAL batch.
    k_samples [4]: completions sampled from q per prompt (>= 2, for the leave-one-out baseline); the
    importance set is these plus the demonstration.  reward_steps [1]: reward updates per policy update (the
    policy step uses the samples of the reward step it follows).  reward_learning_rate [1e-5]: AdamW for R_phi.
    policy_learning_rate [1e-6]: AdamW for the policy.  beta [0.05]: KL coefficient of the policy step.
    temperature [1.0]: sampling temperature, also of every log-prob (q, pi, pi_ref).  max_new_tokens [32]:
    sampled tokens per completion.  max_length [512]: tokens of a demonstration (prompt + completion + EOS);
    longer demonstrations are dropped and counted.  max_prompt_length [None]: prompts keep their last tokens
    (BOS kept).  add_bos ["auto"]: follow the tokenizer.  add_eos [True]: end demonstrations with EOS.
    max_grad_norm [1.0]: clipping of each model's gradient (None = off).  seed [0]: batch order, sampling and
    the reward head's initialisation.  log_every [1]: steps between history rows (first and last always).
    save_steps [0]: checkpoint every so many steps (0 = final only).  progress [True]: tqdm bar.
    device [None]: "cpu", "cuda", ... (None = cuda if available).  ess_warning [1.5]: warn (once) when more
    than half the prompts of a step have an importance-weight ESS at or below this.  demo_proposal ["fused"]:
    the demonstration's proposal density, GCL's fused q_bar = (K q + [y = y_E]) / (K + 1), or "policy": q(y_E|x)
    as if q had drawn it (see module doc; it collapses onto the demonstration when q(y_E|x) is small).
    """

    steps: PositiveInt = 100
    batch_size: PositiveInt = 8
    k_samples: AtLeastTwo = 4
    reward_steps: PositiveInt = 1
    reward_learning_rate: Positive = 1e-5
    policy_learning_rate: Positive = 1e-6
    beta: NonNegative = 0.05
    temperature: Positive = 1.0
    max_new_tokens: PositiveInt = 32
    max_length: MaxLength = 512
    max_prompt_length: PromptLength = None
    add_bos: AddBos = "auto"
    add_eos: bool = True
    max_grad_norm: MaxGradNorm = 1.0
    seed: Seed = 0
    log_every: PositiveInt = 1
    save_steps: NonNegativeInt = 0
    progress: bool = True
    device: Device = None
    ess_warning: NonNegative = 1.5
    demo_proposal: Literal["fused", "policy"] = "fused"


@dataclasses.dataclass
class Result:
    """model: the trained policy (unwrapped).  reward_model: the learnt R_phi (a Hugging Face
    sequence-classification model).  history: one dict per logged step.  n_dropped: demonstrations dropped
    for exceeding max_length."""

    model: Any
    reward_model: Any
    history: list[dict[str, Any]]
    n_dropped: int = 0


# -- data --------------------------------------------------------------------------------------------
def _encode_demos(tokenizer: Any, data: Any, config: Config, context: int | None) -> tuple[list[Encoded], int]:
    """Encoded demonstrations [prompt][completion][EOS] (not truncated) and the number dropped for length."""
    options = TokenizeOptions(None, config.max_prompt_length, config.add_bos, config.add_eos)
    kept, n_dropped = [], 0
    for k, (prompt, completion) in enumerate(zip(data.prompt, data.completion)):
        e = encode(tokenizer, prompt, completion, options)
        if e is None:
            raise ValidationError(f"row {k}: completion {completion!r} tokenises to nothing; expected a "
                                  "non-empty completion")
        if e.n_prompt == 0:
            raise ValidationError(f"row {k}: empty prompt; expected a prompt to sample completions for "
                                  "(or add_bos=True)")
        if e.n_prompt >= config.max_length:
            raise ValidationError(f"row {k}: prompt of {e.n_prompt} tokens; expected fewer than max_length="
                                  f"{config.max_length} (or set max_prompt_length)")
        if context is not None and e.n_prompt + config.max_new_tokens > context:
            raise ValidationError(f"row {k}: prompt of {e.n_prompt} tokens + max_new_tokens={config.max_new_tokens}"
                                  f"; expected at most the model's context of {context} tokens")
        if len(e.input_ids) > config.max_length:
            n_dropped += 1
            continue
        kept.append(e)
    if not kept:
        raise ValidationError(f"all {len(data)} demonstrations dropped: each is longer than max_length="
                              f"{config.max_length} tokens; raise max_length")
    return kept, n_dropped


def _context(model: Any) -> int | None:
    for name in ("n_positions", "max_position_embeddings"):
        value = getattr(getattr(model, "config", None), name, None)
        if isinstance(value, int):
            return value
    return None


def _seed(*keys: int) -> int:
    """A torch seed for one random stream, e.g. (seed, step, rank) for one step's sampling."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0])


def _is_demo(batch: Any, local: list[Encoded], k: int) -> torch.Tensor:
    """(n, K + 1) bool: sample k of prompt b is its demonstration token for token (EOS included); the last
    column, the demonstration itself, is True."""
    completions = batch.input_ids.masked_fill(~batch.completion_mask, -1).tolist()
    same = [[tuple(t for t in completions[b * k + j] if t >= 0) == e.completion_ids for j in range(k)] + [True]
            for b, e in enumerate(local)]
    return torch.tensor(same, dtype=torch.bool, device=batch.input_ids.device)


# -- training ----------------------------------------------------------------------------------------
def train(model: Any, tokenizer: Any, data: Any, config: Config | None = None, *, reward_model: Any = None,
          ref_model: Any = None, output_dir: str | os.PathLike[str] | None = None) -> Result:
    """Sequence-level MaxEnt IRL (see module doc) from demonstrations ``data`` (anything ``load_sft_data``
    accepts, {prompt, completion} rows).

    model: the SFT policy, the proposal q (trained in place; a peft model trains its adapters and its base
    model is pi_ref). reward_model: R_phi's start, a sequence-classification model, a causal LM or a model
    directory (default: the policy's backbone with a fresh head). ref_model: pi_ref (default: a frozen copy of
    ``model``). output_dir: metrics.jsonl, output_dir/final/{policy,reward_model} (+ step-{n}/ every save_steps).

    History rows: "reward/loss" mean -R(x,y_E) + log Z_hat; "reward/demo" mean R(x,y_E); "reward/samples" mean
    R(x,y_k) of the samples; "log_z"; "ess" mean ESS over prompts, "ess_fraction" ess / (K+1),
    "ess_collapsed" share of prompts with ESS <= ess_warning; "reward/grad_norm"; and, on policy steps,
    "policy/loss", "policy/kl" (mean sequence log q - log pi_ref of the samples), "policy/reward" (mean R of
    the samples after the reward update), "policy/grad_norm"; "completion_length" (sampled tokens, EOS included).
    """
    config = config or Config()
    data = load_sft_data(data)
    if is_peft(model) and reward_model is None:
        raise ValidationError("reward_model: None with a peft policy; expected a reward model, a causal LM or "
                              "a model directory to start R_phi from")
    demos, n_dropped = _encode_demos(tokenizer, data, config, _context(model))
    rt = make_runtime(config.device)
    torch.manual_seed(config.seed)
    pad_id, k = pad_id_of(tokenizer), config.k_samples

    # the three models: pi_ref frozen, R_phi, and the policy (the proposal q)
    if ref_model is None and not is_peft(model):
        ref_model = copy.deepcopy(model).requires_grad_(False)
    if ref_model is not None:
        ref_model = ref_model.to(rt.device).eval()
    source = model if reward_model is None else reward_model
    source = source.model if isinstance(source, RewardModel) else source
    if isinstance(source, (str, os.PathLike)) or not hasattr(source, "score"):
        source = make_reward_model(source, tokenizer, seed=config.seed)
    reward_module = RewardModel(source)
    # dropout off in both (eval mode; gradients still flow): the sampled q is the function that is trained
    reward_module, reward_opt = rt.prepare(reward_module, adamw(reward_module, config.reward_learning_rate))
    policy, policy_opt = rt.prepare(model, adamw(model, config.policy_learning_rate))
    reward_module.eval()
    policy.eval()
    sampling = types.SimpleNamespace(temperature=config.temperature, max_new_tokens=config.max_new_tokens,
                                     missing_eos_penalty=None)

    def zero_reward(prompts: Any, completions: Any) -> np.ndarray:  # rollout's reward: R_phi is applied below
        return np.zeros(len(completions))

    def save(path: Path) -> None:
        save_checkpoint(rt.unwrap(policy), tokenizer, path / "policy")
        save_checkpoint(rt.unwrap(reward_module).model, tokenizer, path / "reward_model")

    history: list[dict[str, Any]] = []
    metrics_file = bar = None
    if output_dir is not None and rt.is_main:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        metrics_file = open(Path(output_dir) / "metrics.jsonl", "w", encoding="utf-8")
    if config.progress and rt.is_main:
        bar = tqdm(total=config.steps, desc="seq-maxent", unit="step")
    warned = False
    batches = global_batches(len(demos), config.batch_size, config.steps, config.seed)  # >= steps batches
    try:
        for step in range(1, config.steps + 1):
            rows = next(batches)
            local = [demos[i] for i in shard(rows, rt)]
            n_global, n = len(rows), len(local)

            # 1. K samples per prompt from q, one batched generate call (prompt b's samples are rows b*K..b*K+K-1)
            prompt_ids = [list(e.input_ids[:e.n_prompt]) for e in local for _ in range(k)]
            batch = rollout(rt.unwrap(policy), tokenizer, [""] * len(prompt_ids), prompt_ids, zero_reward, sampling,
                            ref_model=ref_model, seed=_seed(config.seed, step, rt.rank))
            log_q = batch.logps.sum(-1).view(n, k)  # log q(y_k | x) at the temperature
            seq_kl = (batch.logps - batch.ref_logps).sum(-1).view(n, k)
            demo_batch = {key: v.to(rt.device) for key, v in collate(local, pad_id).items()}
            with torch.no_grad():
                log_q_demo = sequence_logps(rt.unwrap(policy), demo_batch, config.temperature)

            # 2. reward step: one forward over all K + 1 completions of every prompt
            r = reward_module([batch.input_ids, demo_batch["input_ids"]],
                              [batch.attention_mask, demo_batch["attention_mask"]])
            r_set = torch.cat([r[:n * k].view(n, k), r[n * k:, None]], dim=1)  # (n, K + 1), the demo last
            log_q_set = torch.cat([log_q, log_q_demo[:, None]], dim=1)
            if config.demo_proposal == "fused":
                log_q_set = fused_log_proposal(log_q_set, _is_demo(batch, local, k))
            log_w = (r_set - log_q_set).detach()
            if not bool(torch.isfinite(log_w).all()):
                raise ValidationError(f"step {step}: non-finite importance log-weights R - log q "
                                      f"{log_w[~torch.isfinite(log_w)][:3].tolist()}; expected finite rewards and "
                                      "log-probs (lower reward_learning_rate or check the reward model)")
            log_z = log_partition(r_set, log_q_set)
            per_prompt = maxent_loss(r_set[:, -1], log_z)
            reward_loss = global_mean(per_prompt.sum(), n_global, rt)
            check_finite_loss(reward_loss, step)
            rt.backward(reward_loss)
            reward_grad = rt.clip_grad_norm(reward_module.parameters(), config.max_grad_norm or math.inf)
            reward_opt.step()
            reward_opt.zero_grad(set_to_none=True)
            ess = effective_sample_size(log_w)
            collapsed = (ess <= config.ess_warning).float()
            sums = rt.sum(torch.stack([per_prompt.sum(), r_set[:, -1].sum(), r_set[:, :k].mean(-1).sum(),
                                       log_z.sum(), ess.sum(), collapsed.sum(),
                                       batch.completion_mask.sum(-1).float().view(n, k).mean(-1).sum()]).detach())
            loss_v, demo_v, samples_v, log_z_v, ess_v, collapsed_v, length_v = (sums / n_global).tolist()
            row = {"step": step, "reward/loss": loss_v, "reward/demo": demo_v, "reward/samples": samples_v,
                   "log_z": log_z_v, "ess": ess_v, "ess_fraction": ess_v / (k + 1), "ess_collapsed": collapsed_v,
                   "reward/grad_norm": reward_grad, "completion_length": length_v}
            collapse_now = collapsed_v > 0.5 and not warned
            if collapse_now:
                warnings.warn(f"step {step}: importance weights collapsed: mean ESS {ess_v:.2f} of {k + 1}, "
                              f"{collapsed_v:.0%} of prompts at or below ess_warning={config.ess_warning}; "
                              "log Z_hat rests on one sample (q is far from P_phi)", stacklevel=2)
                warned = True

            # 3. policy step (RLOO) on the same samples, scored by the updated reward
            if step % config.reward_steps == 0:
                with torch.no_grad():
                    r_new = rt.unwrap(reward_module)(batch.input_ids, batch.attention_mask).view(n, k)
                advantages = rloo_advantages(r_new - config.beta * seq_kl)
                sample_batch = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask,
                                "completion_mask": batch.completion_mask}
                log_pi = sequence_logps(policy, sample_batch, config.temperature).view(n, k)
                policy_loss = global_mean(-(advantages * log_pi).mean(-1).sum(), n_global, rt)
                check_finite_loss(policy_loss, step)
                rt.backward(policy_loss)
                policy_grad = rt.clip_grad_norm(policy.parameters(), config.max_grad_norm or math.inf)
                policy_opt.step()
                policy_opt.zero_grad(set_to_none=True)
                stats = rt.sum(torch.stack([-(advantages * log_pi).mean(-1).sum(), seq_kl.mean(-1).sum(),
                                            r_new.mean(-1).sum()]).detach())
                pl_v, kl_v, pr_v = (stats / n_global).tolist()
                row.update({"policy/loss": pl_v, "policy/kl": kl_v, "policy/reward": pr_v,
                            "policy/grad_norm": policy_grad})

            if step % config.log_every == 0 or step in (1, config.steps) or collapse_now:
                history.append(row)
                if metrics_file is not None:
                    metrics_file.write(json.dumps(row) + "\n")
                    metrics_file.flush()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_v:.3f}", ess=f"{ess_v:.2f}")
            if output_dir is not None and config.save_steps and step % config.save_steps == 0 and rt.is_main:
                save(Path(output_dir) / f"step-{step}")
        if output_dir is not None and rt.is_main:
            save(Path(output_dir) / "final")
    finally:
        if bar is not None:
            bar.close()
        if metrics_file is not None:
            metrics_file.close()
    return Result(rt.unwrap(policy), rt.unwrap(reward_module).model, history, n_dropped)
