"""Group sampling, and the loop GRPO and RLOO share: G completions per prompt, scored, log-probed under pi and pi_ref.

One step of a group method (Shao et al. 2024, GRPO; Ahmadian et al. 2024, RLOO; online DPO samples the same way):

    prompts x_1 .. x_B, each repeated G = num_generations times: rows j*G .. j*G + G - 1 are x_j's group, so any
        (N,) per-row tensor (N = B * G) reshapes to (B, G) groups with ``.view(-1, G)``
    y_{j,i} ~ pi(. | x_j)        one seeded sampling pass over the N rows (``rollout.sample_completions``; temperature),
                                 cut after the first EOS, re-laid out right-padded (:mod:`irlhf.llm.rollout`)
    r_{j,i} = reward_fn(prompts, completions)   (minus missing_eos_penalty for a completion without EOS)
    logp_old(t), logp_ref(t)     log softmax(logits_{t-1} / temperature)[y_t] under pi and pi_ref, each only when
                                 the method needs it (the LM head runs at completion positions only)

``run`` is the shared loop: per step, sample a group batch, ask the method for advantages A (N,), then
``num_iterations`` passes over the batch, each one optimiser step whose gradient is that of the method's loss on the
whole batch (computed in micro-batches of ``micro_batch_size`` sequences: the method's loss is normalised by
whole-batch counts, so the micro-batches' gradients add up to the whole batch's). With one pass (the default)
pi_old = pi: the old log-probs are the pass's own, detached (ratio 1, gradient the policy gradient), and no extra
forward pass is made for them. The methods (:mod:`irlhf.llm.grpo`, :mod:`irlhf.llm.rloo`,
:mod:`irlhf.llm.online_dpo`) add only their advantages and loss.

Resume (``run(..., resume_from=DIR)``, as the offline trainers: :mod:`irlhf.llm.loop`): every checkpoint (step-N,
final) holds the trainer state too. A resumed run takes pi_ref from the initial policy (its frozen copy, the caller's
``ref_model`` or the peft base), then loads the checkpoint's weights, optimiser and RNG state; its prompt batches
and per-step sampling seeds are those of the steps not done, so it ends where the uninterrupted run does.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar

import torch
from tqdm.auto import tqdm

from irlhf.core.config import BaseConfig, Check, NonNegative, NonNegativeInt, Positive, PositiveInt, Seed
from irlhf.core.errors import ValidationError
from irlhf.llm.loop import (Device, MaxGradNorm, adamw, begin_run, check_finite_loss, is_peft, make_runtime,
                            read_resume, save_checkpoint, trainer_state)
from irlhf.llm.ppo import _prompt_batches, _seed
from irlhf.llm.rollout import (RewardFn, check_scores, frozen_reference, prepare_prompts, reference_logps,
                               sample_completions, token_logps)
from irlhf.llm.tokenize import AddBos, PromptLength

__all__ = ["GroupSize", "GroupConfig", "GroupBatch", "Result", "sample_groups", "group_std", "sequence_kl", "run"]


def _is_group_size(value: object) -> bool:
    return isinstance(value, int) and value >= 2


# a group of one sample has no baseline (its advantage would be 0/0 or 0): at least two per prompt
GroupSize = Annotated[int, Check(_is_group_size, "an int >= 2 (a group of one sample has no baseline to compare with)")]


@dataclasses.dataclass(frozen=True)
class GroupConfig(BaseConfig):
    """Options every group method has (defaults in brackets; grpo.Config and rloo.Config change some).

    steps [100]: sampled batches, each followed by its update(s).  batch_size [4]: prompts per step (drawn from
    successive seeded permutations; fewer prompts than batch_size repeat), each sampled num_generations times.
    num_generations [8]: G, samples per prompt (>= 2).  micro_batch_size [None]: sequences per forward/backward
    pass; the gradients add up to the whole batch's (None = all batch_size * G at once).  num_iterations [1]:
    passes (optimiser steps) over each batch (mu in GRPO's algorithm; > 1 makes pi_old != pi after the first).
    learning_rate [1e-6]: AdamW, constant (TRL's default rate; raise it for tiny models, e.g. 1e-3).
    weight_decay [0.0].  max_new_tokens [32]: sampled tokens per completion.  temperature [1.0]: sampling
    temperature, also used for every log-prob (old, new, ref).  max_prompt_length [None]: prompts keep their last
    tokens (BOS kept).  add_bos ["auto"]: prepend BOS ("auto" = as the tokenizer does).  beta [0.04]: KL coefficient
    (0: no reference model at all, no reference forward pass).  epsilon [0.2]: ratio clip, 1 - epsilon below.
    epsilon_high [None]: the upper clip 1 + epsilon_high (DAPO's clip-higher; None = epsilon).
    missing_eos_penalty [None]: subtracted from the reward of a completion without EOS (None = off).
    mask_truncated_completions [False]: completions without EOS (cut at max_new_tokens) still count in the
    advantages' group statistics but not in the loss (DAPO, Yu et al. 2025).  max_grad_norm [1.0]: gradient
    clipping (None = off).  seed [0].  log_every [1]: steps per history row (the last step is always logged).
    save_steps [0]: checkpoint every so many steps into output_dir/step-N (0 = only output_dir/final; each holds
    the trainer state too: ``train(..., resume_from=...)``).  eval_steps [0]: evaluate on eval_prompts every so
    many steps (0 = only after training).  progress [True]: a tqdm bar over steps.  device [None]: "cpu", "cuda",
    ... (None = cuda if available). A resumed run may change only RESUMABLE_CHANGES (``loop.read_resume``).
    """

    # the run's length, how often it logs, evaluates and saves, where it runs: nothing the training depends on
    RESUMABLE_CHANGES: ClassVar[tuple[str, ...]] = ("steps", "save_steps", "eval_steps", "log_every", "progress",
                                                    "device")

    steps: PositiveInt = 100
    batch_size: PositiveInt = 4
    num_generations: GroupSize = 8
    micro_batch_size: PositiveInt | None = None
    num_iterations: PositiveInt = 1
    learning_rate: Positive = 1e-6
    weight_decay: NonNegative = 0.0
    max_new_tokens: PositiveInt = 32
    temperature: Positive = 1.0
    max_prompt_length: PromptLength = None
    add_bos: AddBos = "auto"
    beta: NonNegative = 0.04
    epsilon: Positive = 0.2
    epsilon_high: Positive | None = None
    missing_eos_penalty: float | None = None
    mask_truncated_completions: bool = False
    max_grad_norm: MaxGradNorm = 1.0
    seed: Seed = 0
    log_every: PositiveInt = 1
    save_steps: NonNegativeInt = 0
    eval_steps: NonNegativeInt = 0
    progress: bool = True
    device: Device = None

    def validate(self) -> None:
        if self.epsilon >= 1:
            raise ValidationError(f"epsilon={self.epsilon}: expected < 1 (the ratio is clipped below at 1 - epsilon)")


@dataclasses.dataclass
class GroupBatch:
    """N = n_prompts * num_generations sampled completions, grouped by prompt (rows j*G .. j*G + G - 1), on the
    model's device; (N, T) right-padded [prompt][completion][pad] unless noted.

    prompts (N,): each row's prompt; input_ids, attention_mask; completion_mask (bool, EOS included); has_eos
    (N,) bool; completions (N,) the texts passed to reward_fn; scores (N,) fp32 reward_fn's; penalised_scores
    (N,) after missing_eos_penalty; logps, ref_logps: per completion token under pi (at sampling time) and pi_ref
    (0 elsewhere), or None where not asked for; num_generations: G.
    """

    prompts: list[Any]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    completion_mask: torch.Tensor
    has_eos: torch.Tensor
    completions: list[str]
    scores: torch.Tensor
    penalised_scores: torch.Tensor
    logps: torch.Tensor | None
    ref_logps: torch.Tensor | None
    num_generations: int


@dataclasses.dataclass
class Result:
    """model: the trained policy; history: one dict per logged step (and "eval/..." rows)."""

    model: Any
    history: list[dict[str, float]]


@torch.no_grad()
def sample_groups(model: Any, tokenizer: Any, prompts: Sequence[Any], prompt_ids: Sequence[Sequence[int]],
                  reward_fn: RewardFn, config: Any, *, num_generations: int, seed: int = 0, ref_model: Any = None,
                  policy_logps: bool = True, reference: bool = True, logp_temperature: float | None = None
                  ) -> GroupBatch:
    """Sample ``num_generations`` completions of each prompt (one seeded generate call), score them, and (as asked)
    compute their per-token log-probs under pi (``policy_logps``) and pi_ref (``reference``; ``ref_model`` None
    means a peft ``model`` whose adapters are disabled). ``prompt_ids``: the prompts' token ids
    (``rollout.encode_prompts``); ``config``: temperature, max_new_tokens, missing_eos_penalty. Log-probs are
    at ``logp_temperature`` (None: the sampling temperature)."""
    if reference and ref_model is None and not is_peft(model):
        raise ValidationError("sample_groups: reference=True needs a ref_model (or a peft model, whose adapters are "
                              "disabled for pi_ref)")
    rows_prompts = [prompt for prompt in prompts for _ in range(num_generations)]
    rows_ids = [ids for ids in prompt_ids for _ in range(num_generations)]
    samples = sample_completions(model, tokenizer, rows_ids, config, seed=seed)
    device, mask = samples.has_eos.device, samples.completion_mask
    scores = torch.tensor(check_scores(reward_fn(list(rows_prompts), samples.completions), len(rows_ids)),
                          dtype=torch.float32, device=device)
    penalised = scores
    if config.missing_eos_penalty is not None:
        penalised = torch.where(samples.has_eos, scores, scores - config.missing_eos_penalty)
    temperature = config.temperature if logp_temperature is None else logp_temperature
    args = (samples.input_ids, samples.attention_mask, mask, temperature)
    logps = token_logps(model, *args) if policy_logps else None
    ref_logps = reference_logps(model, ref_model, *args, head_at_completions=True) if reference else None
    return GroupBatch(rows_prompts, samples.input_ids, samples.attention_mask, mask, samples.has_eos,
                      samples.completions, scores, penalised, logps, ref_logps, num_generations)


def group_std(values: torch.Tensor, num_generations: int) -> torch.Tensor:
    """Standard deviation within each group, Bessel-corrected (as TRL's ``nanstd``): (N,) -> (N / G,)."""
    return values.view(-1, num_generations).std(dim=1, correction=1)


def sequence_kl(logps: torch.Tensor, ref_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sequence KL estimate sum_t (log pi - log pi_ref) ("k1") over the completion tokens: (N, T) -> (N,)."""
    return torch.where(mask, logps - ref_logps, 0.0).sum(-1)


# advantages_fn(batch) -> (advantages (N,), extra history numbers); batch.logps / ref_logps are there as requested
AdvantagesFn = Callable[[GroupBatch], tuple[torch.Tensor, dict[str, float]]]
# loss_fn(logps, old_logps, ref_logps or None, advantages, mask, n_sequences, n_tokens) -> (loss, clipfrac): this
# micro-batch's rows' share of the whole batch's loss and clip fraction (normalised by the whole batch's
# n_sequences / n_tokens, so the shares add up)
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor, int, torch.Tensor],
                  tuple[torch.Tensor, torch.Tensor]]


def run(name: str, model: Any, tokenizer: Any, prompts: Sequence[Any], reward_fn: RewardFn, config: GroupConfig,
        advantages_fn: AdvantagesFn, loss_fn: LossFn, *, old_logps: bool, ref_model: Any = None,
        output_dir: str | os.PathLike[str] | None = None, eval_prompts: Sequence[Any] | None = None,
        logp_temperature: float | None = None, resume_from: str | os.PathLike[str] | None = None) -> Result:
    """The group methods' training loop (module doc), ``name`` on the progress bar. ``old_logps``: compute pi_old's
    log-probs when sampling (needed by the advantages, or when num_iterations > 1); otherwise the first pass's own
    log-probs, detached, serve. ``logp_temperature``: the temperature of every log-prob (None: the sampling
    temperature, config.temperature). The other arguments after ``*`` are ``grpo.train``'s."""
    prompts, prompt_ids, eval_ids = prepare_prompts(model, tokenizer, prompts, eval_prompts, reward_fn, config)
    rt = make_runtime(config.device)
    if rt.world > 1:
        raise ValidationError(f"{name} runs in one process; it was launched with {rt.world} (use plain python)")
    resume = read_resume(resume_from, config, config.steps, model) if resume_from is not None else None
    torch.manual_seed(config.seed)
    use_ref = config.beta > 0  # beta = 0: no reference model and no reference forward pass
    ref_model = frozen_reference(model, ref_model, rt.device) if use_ref else None
    if resume is not None:  # only now: pi_ref above is the INITIAL policy (a copy, the caller's or the peft base)
        resume.load_weights(model)
    model, optimizer = rt.prepare(model, adamw(model, config.learning_rate, config.weight_decay))
    model.eval()  # dropout off: the sampling policy and the first pass see the same function
    trainable = [p for p in model.parameters() if p.requires_grad]
    G = config.num_generations
    scoring_temperature = config.temperature if logp_temperature is None else logp_temperature
    need_old = old_logps or config.num_iterations > 1
    out = Path(output_dir) if output_dir is not None else None
    # steps done and the history so far (a resumed run: the checkpoint's; optimiser and RNG state restored)
    done, log = begin_run(resume, optimizer, rt.device, out / "metrics.jsonl" if out is not None else None)

    def checkpoint(path: Path, steps_done: int, rows: Sequence[dict[str, float]]) -> None:
        save_checkpoint(model, tokenizer, path, trainer_state(config, steps_done, optimizer, rows, rt.device))

    def evaluate(step: int) -> None:  # one completion per eval prompt, the same eval randomness every time
        batch = sample_groups(model, tokenizer, eval_prompts, eval_ids, reward_fn, config, num_generations=1,
                              seed=_seed(config.seed, 1), ref_model=ref_model, policy_logps=use_ref, reference=use_ref,
                              logp_temperature=scoring_temperature)
        row = {"step": step, "eval/scores": float(batch.scores.mean())}
        if use_ref:
            row["eval/kl"] = float(sequence_kl(batch.logps, batch.ref_logps, batch.completion_mask).mean())
        row["eval/completion_length"] = float(batch.completion_mask.sum(-1).float().mean())
        row["eval/eos_fraction"] = float(batch.has_eos.float().mean())
        log(row)

    steps = range(done, config.steps)
    if config.progress:
        steps = tqdm(steps, desc=name, unit="step", initial=done, total=config.steps)
    # the prompt batches of the steps not done yet (fixed by the seed); each step's sampling seed is its own
    batches = itertools.islice(_prompt_batches(len(prompt_ids), config.batch_size, config.seed), done, None)
    try:
        for step in steps:
            # 1. sample G completions per prompt, score them, log-prob them under pi_old (if needed) and pi_ref
            index = next(batches)
            batch = sample_groups(model, tokenizer, [prompts[i] for i in index], [prompt_ids[i] for i in index],
                                  reward_fn, config, num_generations=G, seed=_seed(config.seed, 0, step),
                                  ref_model=ref_model, policy_logps=need_old, reference=use_ref,
                                  logp_temperature=scoring_temperature)
            # 2. the method's advantages, one per completion
            advantages, extra = advantages_fn(batch)
            # 3. num_iterations optimiser steps, each on the whole batch (in micro-batches)
            mask = batch.completion_mask
            loss_mask = mask & batch.has_eos[:, None] if config.mask_truncated_completions else mask
            n_sequences, n_tokens = len(mask), loss_mask.sum()
            chunk = config.micro_batch_size or n_sequences
            first_logps = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
            sums = torch.zeros(3, device=mask.device)  # loss, clipfrac, grad norm, summed over the passes
            for iteration in range(config.num_iterations):
                for start in range(0, n_sequences, chunk):
                    rows = slice(start, start + chunk)
                    width = int(batch.attention_mask[rows].sum(-1).max())  # drop all-padding columns
                    logps = token_logps(model, batch.input_ids[rows, :width], batch.attention_mask[rows, :width],
                                        mask[rows, :width], scoring_temperature)
                    old = batch.logps[rows, :width] if batch.logps is not None else logps.detach()
                    ref = batch.ref_logps[rows, :width] if batch.ref_logps is not None else None
                    loss, clipfrac = loss_fn(logps, old, ref, advantages[rows], loss_mask[rows, :width], n_sequences,
                                              n_tokens)
                    check_finite_loss(loss, step)
                    loss.backward()
                    if iteration == 0:
                        first_logps[rows, :width] = logps.detach()
                    sums[:2] += torch.stack([loss.detach(), clipfrac.detach()])
                sums[2] += rt.clip_grad_norm(trainable, config.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

            if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
                loss_mean, clip_mean, norm_mean = (sums / config.num_iterations).tolist()
                std = group_std(batch.scores, G)
                row = {"step": step + 1, "objective/scores": float(batch.scores.mean())}
                if use_ref:  # mean sequence k1 KL of the sampled completions, at sampling time
                    row["objective/kl"] = float(sequence_kl(first_logps, batch.ref_logps, mask).mean())
                row.update({"loss": loss_mean, "grad_norm": norm_mean, "clipfrac": clip_mean,
                            "reward_std": float(std.mean()),
                            "frac_reward_zero_std": float(torch.isclose(std, torch.zeros_like(std)).float().mean()),
                            "completion_length": float(mask.sum(-1).float().mean()),
                            "eos_fraction": float(batch.has_eos.float().mean()), **extra})
                log(row)
            if eval_ids is not None and config.eval_steps and (step + 1) % config.eval_steps == 0:
                evaluate(step + 1)
            if out is not None and config.save_steps and (step + 1) % config.save_steps == 0:
                checkpoint(out / f"step-{step + 1}", step + 1, log.rows)
        training_rows = list(log.rows)  # final's trainer state: without the after-training eval row
        if eval_ids is not None and not (config.eval_steps and config.steps % config.eval_steps == 0):
            evaluate(config.steps)
        if out is not None:
            checkpoint(out / "final", config.steps, training_rows)
    finally:
        log.close()
    return Result(model=model, history=log.rows)
