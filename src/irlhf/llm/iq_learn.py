"""IQ-Learn on tokens: inverse soft-Q learning for language models (Garg et al. 2021, "IQ-Learn: Inverse soft-Q
Learning for Imitation"; Wulfmeier et al. 2024, "Imitating language via scalable inverse reinforcement
learning", NeurIPS 2024).

The token MDP: state s_t = (x, y_<t), action a_t = y_t, next state s_{t+1} = (x, y_<=t). The LM's logits at the
position that predicts y_t are Q(s_t, .) over the vocabulary, so one network is both the reward and the policy:

    V(s)          = alpha * logsumexp_a(Q(s, a) / alpha)
    pi(a | s)     = softmax_a(Q(s, a) / alpha) = exp((Q(s, a) - V(s)) / alpha)
    r(s_t, a_t)   = Q(s_t, a_t) - gamma * V(s_{t+1})       (the recovered reward)

V(s_{t+1}) = 0 after EOS (terminal). A completion cut without EOS (truncated by max_length or max_new_tokens) is
not terminal: V(s_{T+1}) comes from the logits at its last position, so the forward pass sees the whole
sequence. The loss of a global batch (``irlhf.nn.iq.iq_objective``, means over completion tokens; prompt and
padding masked), D the demonstration tokens, rho = D offline, D U policy samples online:

    L_IQ  = -E_D[r] + E_rho[V(s_t) - gamma V(s_{t+1})] + E_D[r^2] / (4 chi_alpha)   (chi^2; 0 for "none";
                                                            E_rho[r^2] with regularize_mixed)
    L     = L_IQ + mle_weight * L_MLE,      L_MLE = -E_D[log pi(a_t | s_t)]          (the SFT loss)

Offline with divergence "none" the first two terms cancel to E_D[V(s_t) - Q(s_t, a_t)] = -alpha E_D[log pi(a_t |
s_t)]: alpha times the SFT loss (token by token, the gamma V(s_{t+1}) terms cancel for any gamma; with gamma = 1
this is also the telescoped sum along each sequence). IQ-Learn offline is therefore MLE plus the chi^2 term
E_D[(Q(s_t, a_t) - gamma V(s_{t+1}))^2] / (4 chi_alpha), a temporal-difference penalty that ties each chosen
logit to the soft value of the next state: Wulfmeier et al.'s "TD-regularised MLE". Online, the value term also
runs over states the policy reaches, which pushes V down where the model goes but the demonstrations do not.

The recovered sequence reward is sum_t r(s_t, a_t). With gamma = 1 and a terminal completion it telescopes to
alpha log pi(y | x) + V(s_0): for one prompt it ranks completions as the policy's log-likelihood does.

Online (``online=True``): every step samples completions from the current policy (temperature alpha, one
batched ``generate``) for ``policy_fraction`` of the batch's prompts, and mixes them in as policy transitions.
Multi-process: every process holds the global token counts (demonstrations counted up front, policy tokens
summed once per step), so N processes give the gradient of one process (``irlhf.llm.loop``).

    result = train(model, tokenizer, "demos.jsonl", Config(learning_rate=2e-5, max_length=512))
    scores = sequence_rewards(result.model, tokenizer, prompts, completions, config)   # (N,) recovered rewards
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint
from tqdm.auto import tqdm

from irlhf.core.config import BaseConfig, NonNegative, NonNegativeInt, Positive, PositiveInt, Range, Seed
from irlhf.core.errors import ValidationError, describe
from irlhf.llm.loop import (Device, LRSchedule, MaxGradNorm, MaxSteps, adamw, check_finite_loss, global_batches,
                            make_runtime, save_checkpoint, shard)
from irlhf.llm.sft import load_sft_data
from irlhf.llm.tokenize import (AddBos, Encoded, MaxLength, PromptLength, TokenizeOptions, collate, encode, pad_id_of,
                                tokenizer_adds_bos)
from irlhf.nn.iq import iq_objective, soft_value

__all__ = ["Config", "Result", "sequence_rewards", "token_rewards", "train"]

METRICS = ("loss", "softq_loss", "value_loss", "chi2_loss", "mle_loss", "reward", "sequence_reward",
           "token_accuracy", "policy_reward")


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """Options of ``train`` (defaults in brackets).

    alpha [1.0]: soft temperature: V = alpha logsumexp(Q / alpha), pi = softmax(Q / alpha); 1.0 makes pi the
    LM's own softmax, so the pretrained model is the starting policy and the BC part is exactly the SFT loss.
    gamma [1.0]: discount in [0, 1]; sequences are finite, so undiscounted.  divergence ["chi2"]: the chi^2
    TD penalty, or "none" (then offline IQ-Learn is alpha x SFT).  chi_alpha [0.5]: its weight is
    1 / (4 chi_alpha) (Garg et al.'s value).  mle_weight [0.0]: weight of the extra MLE term; 0 keeps the
    published objective (it already holds alpha x MLE), > 0 holds the policy nearer MLE when the TD term or
    the policy samples dominate.  regularize_mixed [False]: chi^2 over demonstrations and policy samples
    (needs online).  online [False]: sample from the policy every step.  policy_fraction [1.0]: the share of
    each batch's prompts (in (0, 1]) given a policy sample (1.0: as many policy as expert rows, IQ-Learn's
    half-and-half batches).  temperature [None]: sampling temperature (None = alpha, i.e. pi itself).
    max_new_tokens [64]: sampled completion length limit (a sample cut there is truncated, not terminal).
    learning_rate [2e-5]: AdamW.  weight_decay [0.0].  lr_schedule ["linear"]: decay to 0 over the run, or
    "constant".  batch_size [8]: demonstrations per GLOBAL batch.  epochs [1].  max_steps [None]: stop after
    this many steps.  max_length [1024]: tokens per sequence; longer completions are cut (and become
    truncated, non-terminal) and rows whose prompt leaves no room are dropped (``Result.n_dropped``).
    max_prompt_length [None]: keep the prompt's last tokens.  add_bos ["auto"]: follow the tokenizer.
    add_eos [True]: end each demonstration with EOS (terminal).  max_grad_norm [1.0] (None = off).  seed [0].
    log_every [10]: steps between history rows.  save_steps [0]: checkpoint every this many steps (0 = final
    only).  progress [True]: tqdm bar.  device [None]: None = cuda if available.
    """

    alpha: Positive = 1.0
    gamma: Annotated[float, Range(0, 1)] = 1.0
    divergence: Literal["chi2", "none"] = "chi2"
    chi_alpha: Positive = 0.5
    mle_weight: NonNegative = 0.0
    regularize_mixed: bool = False
    online: bool = False
    policy_fraction: Annotated[float, Range(0, 1, low_open=True)] = 1.0
    temperature: Positive | None = None
    max_new_tokens: PositiveInt = 64
    learning_rate: Positive = 2e-5
    weight_decay: NonNegative = 0.0
    lr_schedule: LRSchedule = "linear"
    batch_size: PositiveInt = 8
    epochs: PositiveInt = 1
    max_steps: MaxSteps = None
    max_length: MaxLength | None = 1024
    max_prompt_length: PromptLength = None
    add_bos: AddBos = "auto"
    add_eos: bool = True
    max_grad_norm: MaxGradNorm = 1.0
    seed: Seed = 0
    log_every: PositiveInt = 10
    save_steps: NonNegativeInt = 0
    progress: bool = True
    device: Device = None

    def validate(self) -> None:
        if self.regularize_mixed and not self.online:
            raise ValidationError("regularize_mixed=True with online=False: there are no policy samples to "
                                  "regularise; expected online=True")

    def tokenize_options(self) -> TokenizeOptions:
        return TokenizeOptions(self.max_length, self.max_prompt_length, self.add_bos, self.add_eos)


@dataclasses.dataclass
class Result:
    """model: the trained (unwrapped) model.  history: one dict per logged step.  n_dropped: demonstrations
    dropped (no room for a completion).  n_truncated: kept demonstrations cut by max_length (no final EOS)."""

    model: Any
    history: list[dict[str, Any]]
    n_dropped: int = 0
    n_truncated: int = 0


# -- the token MDP -----------------------------------------------------------------------------
@dataclasses.dataclass
class _Transitions:
    """The N transitions (s_t, a_t, s_{t+1}) of a batch's scored tokens, row-major: q_sa, v, v_next (N,) fp32,
    dones (N,) bool (a_t is EOS), rows / cols (N,) the token's (row, position t), correct (N,) argmax == a_t."""

    q_sa: torch.Tensor
    v: torch.Tensor
    v_next: torch.Tensor
    dones: torch.Tensor
    rows: torch.Tensor
    cols: torch.Tensor
    correct: torch.Tensor


def _lse_chunk(logits: torch.Tensor, alpha: float) -> torch.Tensor:
    return soft_value(logits.float(), alpha)


def _soft_values(logits: torch.Tensor, alpha: float, chunk_size: int = 1024) -> torch.Tensor:
    """V = alpha logsumexp(Q / alpha) of (M, vocabulary) logits, fp32. Low-precision logits with gradients go in
    chunks recomputed in the backward pass, so their fp32 copies are never all kept (as ``llm.logps``)."""
    if not (logits.requires_grad and logits.dtype != torch.float32):
        return _lse_chunk(logits, alpha)
    return torch.cat([checkpoint(_lse_chunk, piece, alpha, use_reentrant=False)
                      for piece in logits.split(chunk_size)])


def _scored(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    scored = batch["completion_mask"].bool().clone()
    scored[:, 0] = False  # position 0 has no prediction
    return scored


def _transitions(logits: torch.Tensor, input_ids: torch.Tensor, scored: torch.Tensor, alpha: float,
                 eos_token_id: int | None) -> _Transitions:
    """Q, V and V' of every scored token from one forward pass's logits (B, T, V); no loop over tokens.

    The states are the positions p that predict a scored token (p + 1 scored) and each row's last real
    position (its V bootstraps a truncated completion). Scored tokens are contiguous in a row, so in row-major
    order the state after position p is the next entry: v_next = v shifted by one."""
    has_next = F.pad(scored[:, 1:], (0, 1))  # position p predicts a scored token p + 1
    states = scored | has_next
    rows, cols = states.nonzero(as_tuple=True)
    q = logits[rows, cols]  # (M, V): Q(s, .) at the states only
    v = _soft_values(q, alpha)
    actions = F.pad(input_ids[:, 1:], (0, 1))[rows, cols]
    step = has_next[rows, cols]  # a transition leaves this state (every state but each row's last)
    q_sa = q.gather(-1, actions[:, None])[:, 0].float()
    dones = actions == eos_token_id if eos_token_id is not None else torch.zeros_like(step)
    correct = q.detach().argmax(-1) == actions
    return _Transitions(q_sa[step], v[step], v.roll(-1)[step], dones[step], rows[step], cols[step] + 1,
                        correct[step])


def _forward(model: Any, batch: dict[str, torch.Tensor], alpha: float, eos_token_id: int | None) -> _Transitions:
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
    return _transitions(logits, batch["input_ids"], _scored(batch), alpha, eos_token_id)


def token_rewards(model: Any, batch: dict[str, torch.Tensor], alpha: float = 1.0, gamma: float = 1.0, *,
                  eos_token_id: int | None) -> torch.Tensor:
    """The recovered reward r(s_t, a_t) = Q(s_t, a_t) - gamma V(s_{t+1}) of every completion token, (B, T) fp32:
    entry t is about token t (0 off the completion and at t = 0). ``batch``: ``irlhf.llm.tokenize.collate``'s
    right-padded input_ids, attention_mask, completion_mask. V(s_{t+1}) = 0 after ``eos_token_id`` (None: no
    terminal token). Follows the caller's grad mode."""
    tr = _forward(model, batch, alpha, eos_token_id)
    r = tr.q_sa - gamma * (~tr.dones) * tr.v_next
    out = torch.zeros(batch["input_ids"].shape, dtype=torch.float32, device=r.device)
    return out.index_put((tr.rows, tr.cols), r)


@torch.no_grad()
def sequence_rewards(model: Any, tokenizer: Any, prompts: Any, completions: Any, config: Config | None = None, *,
                     batch_size: int = 16) -> np.ndarray:
    """sum_t r(s_t, a_t) of each (prompt, completion), (N,) float64, with ``config``'s alpha, gamma and
    tokenisation (those of training; add_eos makes each completion terminal; an empty or blank completion is
    scored as EOS alone, as ``irlhf.llm.reward.as_reward_fn`` does). Runs in eval mode."""
    config = config or Config()
    if isinstance(prompts, (str, bytes)) or isinstance(completions, (str, bytes)) or len(prompts) != len(completions):
        raise ValidationError(f"prompts ({describe(prompts)}) and completions ({describe(completions)}): expected "
                              "two lists of equal length")
    options = config.tokenize_options()
    encoded = []
    for k, (prompt, completion) in enumerate(zip(prompts, completions)):
        if isinstance(completion, str) and not completion.strip() and options.add_eos and tokenizer.eos_token:
            completion = tokenizer.eos_token  # a policy that stopped at once wrote "prompt EOS": score that
        item = encode(tokenizer, prompt, completion, options)
        if item is None:
            raise ValidationError(f"completions[{k}]: {describe(completion)} leaves no completion token after "
                                  f"tokenisation (max_length={config.max_length}); expected a scorable completion")
        encoded.append(item)
    device = next(model.parameters()).device
    pad_id, was_training = pad_id_of(tokenizer), model.training
    model.eval()
    try:
        out = [token_rewards(model, {k: v.to(device) for k, v in collate(encoded[i:i + batch_size], pad_id).items()},
                             config.alpha, config.gamma, eos_token_id=tokenizer.eos_token_id).sum(-1).double().cpu()
               for i in range(0, len(encoded), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros(0)


# -- the loss of one batch -----------------------------------------------------------------------
def _batch_loss(model: Any, batch: dict[str, torch.Tensor], n_expert_rows: int, config: Config,
                eos_token_id: int | None, counts: tuple[int, int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """This process's share of L and of METRICS (sum them over processes for the global values).

    Rows [:n_expert_rows] of ``batch`` are demonstrations, the rest policy samples. counts: the GLOBAL batch's
    demonstration tokens, all tokens, policy tokens and demonstrations, the denominators of every mean."""
    n_expert, n_all, n_policy, n_demos = counts
    tr = _forward(model, batch, config.alpha, eos_token_id)
    is_expert = tr.rows < n_expert_rows
    iq, parts = iq_objective(tr.q_sa, tr.v, tr.v_next, tr.dones, is_expert, gamma=config.gamma,
                             divergence=config.divergence, chi_alpha=config.chi_alpha,
                             regularize_mixed=config.regularize_mixed, as_float=False, n_expert=n_expert, n_all=n_all)
    nll = (tr.v - tr.q_sa) / config.alpha  # -log pi(a_t | s_t)
    mle = (nll * is_expert).sum() / n_expert
    loss = iq + config.mle_weight * mle if config.mle_weight else iq
    with torch.no_grad():
        r = tr.q_sa - config.gamma * (~tr.dones) * tr.v_next
        expert_r = r * is_expert
        policy_r = (r * ~is_expert).sum() / max(n_policy, 1)
        shares = torch.stack([loss.detach(), parts["softq_loss"], parts["value_loss"], parts["chi2_loss"],
                              mle.detach(), parts["reward"], expert_r.sum() / n_demos,
                              (tr.correct & is_expert).sum() / n_expert, policy_r]).float()
    return loss, shares


@torch.no_grad()
def _sample(model: Any, prompt_ids: list[list[int]], config: Config, pad_id: int, eos_token_id: int | None,
            seed: int) -> list[Encoded]:
    """One completion per prompt from pi (one batched ``generate``), cut after the first EOS and to max_length."""
    from transformers import GenerationConfig  # why: optional (llm extra), slow to import

    device = next(model.parameters()).device
    n, width = len(prompt_ids), max(len(ids) for ids in prompt_ids)
    left_ids = torch.full((n, width), pad_id, dtype=torch.long)
    left_mask = torch.zeros((n, width), dtype=torch.long)
    for row, ids in enumerate(prompt_ids):  # left padding: every prompt ends at the same column
        left_ids[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
        left_mask[row, width - len(ids):] = 1
    max_new = config.max_new_tokens
    if config.max_length is not None:
        max_new = max(1, min(max_new, config.max_length - min(len(ids) for ids in prompt_ids)))
    generation = GenerationConfig(do_sample=True, temperature=config.temperature or config.alpha, top_k=0,
                                  top_p=1.0, max_new_tokens=max_new, eos_token_id=eos_token_id, pad_token_id=pad_id)
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            sampled = model.generate(input_ids=left_ids.to(device), attention_mask=left_mask.to(device),
                                     generation_config=generation)[:, width:].cpu()
    finally:
        model.train(was_training)
    is_eos = sampled == eos_token_id if eos_token_id is not None else torch.zeros_like(sampled, dtype=torch.bool)
    lengths = torch.where(is_eos.any(-1), is_eos.float().argmax(-1) + 1, sampled.shape[1]).tolist()
    items = []
    for ids, row, k in zip(prompt_ids, sampled.tolist(), lengths):
        if config.max_length is not None:
            k = min(k, config.max_length - len(ids))  # cut: truncated, not terminal
        items.append(Encoded(tuple(ids) + tuple(row[:k]), len(ids)))
    return items


# -- training ----------------------------------------------------------------------------------
def _encode_all(tokenizer: Any, data: Any, config: Config, options: TokenizeOptions, what: str
                ) -> tuple[list[Encoded], int]:
    demos = load_sft_data(data)
    encoded = [encode(tokenizer, p, c, options) for p, c in zip(demos.prompt, demos.completion)]
    kept = [e for e in encoded if e is not None]
    if not kept:
        raise ValidationError(f"{what}: all {len(demos)} demonstrations dropped: their prompts leave no room for a "
                              f"completion (max_length={config.max_length}, "
                              f"max_prompt_length={config.max_prompt_length}); expected a larger max_length")
    return kept, len(demos) - len(kept)


def train(model: Any, tokenizer: Any, data: Any, config: Config | None = None, *,
          output_dir: str | os.PathLike[str] | None = None, eval_data: Any = None) -> Result:
    """IQ-Learn ``model`` (a causal LM or a peft model) on demonstrations ``data`` (anything
    ``irlhf.llm.sft.load_sft_data`` accepts: {prompt, completion} or {text} rows); see the module docstring.

    ``output_dir``: metrics.jsonl as training goes, checkpoints output_dir/step-N every save_steps and
    output_dir/final.  ``eval_data``: demonstrations scored once after the last step ("eval/..." keys)."""
    config = config or Config()
    if not isinstance(config, Config):
        raise ValidationError(f"config: {describe(config)}; expected irlhf.llm.iq_learn.Config")
    rt = make_runtime(config.device)
    torch.manual_seed(config.seed)
    pad_id, eos_id = pad_id_of(tokenizer), tokenizer.eos_token_id
    options = config.tokenize_options()
    if options.add_bos == "auto":  # decide once, not once per encoded sequence
        options = dataclasses.replace(options, add_bos=tokenizer_adds_bos(tokenizer))
    demos, n_dropped = _encode_all(tokenizer, data, config, options, "data")
    evaluation = _encode_all(tokenizer, eval_data, config, options, "eval_data")[0] if eval_data is not None else None
    if config.online:
        empty = [k for k, e in enumerate(demos) if e.n_prompt == 0]
        if empty:
            raise ValidationError(f"online=True: demonstration {empty[0]} has an empty prompt ({len(empty)} such); "
                                  "expected {prompt, completion} rows (or add_bos=True) to sample from")
    n_truncated = sum(e.input_ids[-1] != eos_id for e in demos) if config.add_eos else 0
    tokens_per_row = np.array([len(e.input_ids) - max(e.n_prompt, 1) for e in demos])  # scored tokens

    model.train()
    opt = adamw(model, config.learning_rate, config.weight_decay)
    model, opt = rt.prepare(model, opt)
    total_steps = math.ceil(len(demos) / config.batch_size) * config.epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    schedule = (lambda step: 1.0) if config.lr_schedule == "constant" else (lambda step: 1.0 - step / total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, schedule)

    history: list[dict[str, Any]] = []
    metrics_file = None
    if output_dir is not None and rt.is_main:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        metrics_file = open(Path(output_dir) / "metrics.jsonl", "w", encoding="utf-8")
    bar = tqdm(total=total_steps, desc="iq-learn", unit="step") if config.progress and rt.is_main else None
    step, total_tokens = 0, 0
    try:
        for global_rows in global_batches(len(demos), config.batch_size, config.epochs, config.seed):
            if step >= total_steps:
                break
            n_expert = int(tokens_per_row[global_rows].sum())
            if n_expert == 0:
                continue  # nothing to learn from (only one-token {text} rows without BOS)
            local, weight = shard(global_rows, rt), 1.0
            if len(local) == 0:  # a short last batch leaves this process no row: run one at weight 0 (DDP syncs)
                local, weight = global_rows[:1], 0.0
            items = [demos[i] for i in local]
            n_policy = 0
            if config.online:
                policy_rows = shard(global_rows[:math.ceil(config.policy_fraction * len(global_rows))], rt)
                if len(policy_rows):
                    seed = int(np.random.SeedSequence([config.seed, step, rt.rank]).generate_state(1)[0])
                    sampled = _sample(rt.unwrap(model), [list(demos[i].input_ids[:demos[i].n_prompt])
                                                         for i in policy_rows], config, pad_id, eos_id, seed)
                    n_policy = sum(len(e.input_ids) - e.n_prompt for e in sampled)
                    items = items + sampled
                n_policy = int(rt.sum(torch.tensor(n_policy, device=rt.device)))  # all processes' policy tokens
            batch = {k: v.to(rt.device) for k, v in collate(items, pad_id).items()}
            counts = (n_expert, n_expert + n_policy, n_policy, len(global_rows))
            loss, shares = _batch_loss(model, batch, len(local), config, eos_id, counts)
            loss = loss * (weight * rt.world)  # DDP averages gradients: each process's share times world
            check_finite_loss(loss, step)
            rt.backward(loss)
            grad_norm = rt.clip_grad_norm(model.parameters(), config.max_grad_norm or float("inf"))
            lr = scheduler.get_last_lr()[0]
            opt.step()
            scheduler.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            total_tokens += n_expert + n_policy
            if bar is not None:
                bar.update(1)

            if step % config.log_every == 0 or step == total_steps or step == 1:
                means = rt.sum(shares * weight).tolist()  # this batch's global means, before the update
                row = {"step": step, **dict(zip(METRICS, means)), "expert_tokens": n_expert,
                       "policy_tokens": n_policy, "num_tokens": total_tokens, "grad_norm": grad_norm,
                       "learning_rate": lr}
                if not config.online:
                    del row["policy_reward"]
                if evaluation is not None and step == total_steps:
                    row.update(_evaluate(rt.unwrap(model), evaluation, config, pad_id, eos_id, rt.device))
                history.append(row)
                if metrics_file is not None:
                    metrics_file.write(json.dumps(row) + "\n")
                    metrics_file.flush()
                if bar is not None:
                    bar.set_postfix(loss=f"{row['loss']:.4f}", reward=f"{row['reward']:.3f}")
            if output_dir is not None and config.save_steps and step % config.save_steps == 0 and rt.is_main:
                save_checkpoint(rt.unwrap(model), tokenizer, Path(output_dir) / f"step-{step}")
        trained = rt.unwrap(model)
        if output_dir is not None and rt.is_main:
            save_checkpoint(trained, tokenizer, Path(output_dir) / "final")
    finally:
        if bar is not None:
            bar.close()
        if metrics_file is not None:
            metrics_file.close()
    trained.eval()
    return Result(trained, history, n_dropped, int(n_truncated))


@torch.no_grad()
def _evaluate(model: Any, items: list[Encoded], config: Config, pad_id: int, eos_token_id: int | None,
              device: torch.device) -> dict[str, float]:
    """The offline loss and metrics over all of ``items`` (demonstrations), in eval mode."""
    counts_all = sum(len(e.input_ids) - max(e.n_prompt, 1) for e in items)
    counts = (max(counts_all, 1), max(counts_all, 1), 0, len(items))
    was_training = model.training
    model.eval()
    total = torch.zeros(len(METRICS), device=device)
    try:
        for start in range(0, len(items), config.batch_size):
            part = items[start:start + config.batch_size]
            batch = {k: v.to(device) for k, v in collate(part, pad_id).items()}
            total += _batch_loss(model, batch, len(part), config, eos_token_id, counts)[1]
    finally:
        model.train(was_training)
    return {f"eval/{name}": value for name, value in zip(METRICS, total.tolist()) if name != "policy_reward"}
