"""The reward-KL frontier on the synthetic sentiment task (the DPO paper's first experiment, Rafailov et al.
2023, Fig. 2 left, at a size that runs on a CPU).

Per seed:

1. pretrain a tiny GPT-2 on a generated review corpus (``sentiment.pretrain``), then SFT it on prompt ->
   completion splits of fresh reviews (``irlhf.llm.sft``): pi_SFT, which is also pi_ref for every run below;
2. sample ``samples_per_prompt`` (4) completions for each training prompt from pi_SFT, score them with the
   ground-truth lexicon reward (``sentiment.sentiment_score``) and label all 6 pairs per prompt (ties dropped);
3. train, each from pi_SFT: DPO for every beta in ``dpo_betas``; a reward model on the same pairs and PPO on it
   for every KL coefficient in ``ppo_betas``; PPO on the ground-truth reward for the same coefficients;
4. evaluate every policy on held-out prompts: mean ground-truth reward of sampled completions (temperature 1)
   and the sequence-level KL(pi || pi_ref) = E_{y ~ pi}[log pi(y|x) - log pi_ref(y|x)] (summed over the
   completion tokens, EOS included), estimated from the same samples.

``run`` returns one row per (method, beta, seed) and ``plot`` draws reward against KL (docs/llm.md).

    result = run(Config(seeds=(0,)))       # minutes on one CPU core
    plot(result.rows, "frontier.png")
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import numpy as np
import torch

from irlhf.core.config import BaseConfig, Check, Positive, PositiveInt, Range
from irlhf.core.errors import ValidationError
from irlhf.data.text import TextPairs
from irlhf.llm import dpo, ppo, reward, sft
from irlhf.llm.tasks import sentiment


def _is_seeds(value: Any) -> bool:
    return (isinstance(value, tuple) and len(value) > 0
            and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value))


def _is_betas(value: Any) -> bool:
    return isinstance(value, tuple) and all(
        isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) and b > 0 for b in value)


Betas = Annotated[tuple, Check(_is_betas, "a tuple of numbers > 0")]


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """The experiment's sizes and hyperparameters; the defaults are the RESULTS.md run.

    seeds [(0, 1, 2)]: one full pipeline per seed.  n_layer [2], n_embd [64]: the tiny GPT-2.
    corpus_reviews [5000], pretrain_steps [600]: pretraining.  sft_examples [2000], sft_steps [200], sft_lr [1e-3].
    n_train_prompts [256], samples_per_prompt [4] (all K(K-1)/2 pairs labelled), n_eval_prompts [64],
    eval_samples [4] (completions per held-out prompt), max_new_tokens [24].
    dpo_betas [(0.05, 0.1, 1.0, 5.0)], dpo_epochs [3], dpo_lr [3e-4], dpo_batch_size [64].
    reward_epochs [10], reward_lr [1e-3] (held-out pair accuracy ~0.83 here; 3 epochs gave 0.67).
    ppo_betas [(0.02, 0.1, 0.5)]: KL coefficients for PPO on the reward model and on the true reward;
    ppo_steps [60] rollouts of ppo_batch_size [32] prompts, ppo_lr [3e-4].
    progress [False]: progress bars of the inner trainers.
    """

    seeds: Annotated[tuple, Check(_is_seeds, "a non-empty tuple of ints >= 0")] = (0, 1, 2)
    n_layer: PositiveInt = 2
    n_embd: PositiveInt = 64
    corpus_reviews: PositiveInt = 5000
    pretrain_steps: PositiveInt = 600
    sft_examples: PositiveInt = 2000
    sft_steps: PositiveInt = 200
    sft_lr: Positive = 1e-3
    n_train_prompts: PositiveInt = 256
    samples_per_prompt: Annotated[int, Range(2)] = 4
    n_eval_prompts: PositiveInt = 64
    eval_samples: PositiveInt = 4
    max_new_tokens: PositiveInt = 24
    dpo_betas: Betas = (0.05, 0.1, 1.0, 5.0)
    dpo_epochs: PositiveInt = 3
    dpo_lr: Positive = 3e-4
    dpo_batch_size: PositiveInt = 64
    reward_epochs: PositiveInt = 10
    reward_lr: Positive = 1e-3
    ppo_betas: Betas = (0.02, 0.1, 0.5)
    ppo_steps: PositiveInt = 60
    ppo_batch_size: PositiveInt = 32
    ppo_lr: Positive = 3e-4
    progress: bool = False

    def __post_init__(self) -> None:
        for name in ("seeds", "dpo_betas", "ppo_betas"):  # JSON gives lists: store tuples (checks follow)
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        super().__post_init__()


@dataclasses.dataclass
class Result:
    """rows: one dict per evaluated policy {method, beta, seed, reward, reward_sem, kl, kl_sem, seconds};
    pairs: the labelled pairs of the first seed; sft: pi_SFT of the first seed (the reference), tokenizer."""

    rows: list[dict[str, Any]]
    pairs: TextPairs
    sft: Any
    tokenizer: Any


def true_reward(prompts: Sequence[Any], completions: Sequence[str]) -> np.ndarray:
    """The ground-truth reward of a completion: its lexicon sentiment score in (-1, 1)."""
    return sentiment.sentiment_score(list(completions))


def sft_examples(n: int, seed: int) -> list[dict[str, str]]:
    """{prompt, completion} rows: fresh reviews cut where ``make_prompts`` would cut them (before the first
    sentiment word, at most 6 words); the completion keeps its leading space so prompt + completion is the text."""
    rows = []
    for review in sentiment.make_corpus(n, seed=seed):
        words = review.split(" ")
        cut = 0
        while cut < min(6, len(words) - 1) and words[cut] not in sentiment.POSITIVE and words[cut] not in sentiment.NEGATIVE:
            cut += 1
        cut = max(cut, 1)
        rows.append({"prompt": " ".join(words[:cut]), "completion": " " + " ".join(words[cut:])})
    return rows


def label_pairs(prompts: Sequence[str], completions: Sequence[Sequence[str]]) -> TextPairs:
    """All K(K-1)/2 pairs of each prompt's K completions, the higher ground-truth score chosen; ties and empty
    completions dropped. Completions get a leading space (they continue the prompt's text)."""
    p, c, r = [], [], []
    for prompt, texts in zip(prompts, completions):
        scores = sentiment.sentiment_score(list(texts))
        for a in range(len(texts)):
            for b in range(a + 1, len(texts)):
                if scores[a] == scores[b] or not texts[a] or not texts[b]:
                    continue
                win, lose = (a, b) if scores[a] > scores[b] else (b, a)
                p.append(prompt)
                c.append(" " + texts[win])
                r.append(" " + texts[lose])
    if not p:
        raise ValidationError("label_pairs: every pair tied; sample more completions per prompt")
    return TextPairs(tuple(p), tuple(c), tuple(r))


@torch.no_grad()
def evaluate(policy: Any, ref: Any, tokenizer: Any, prompts: Sequence[str], n_samples: int, max_new_tokens: int,
             seed: int) -> dict[str, float]:
    """Mean ground-truth reward and sequence KL(pi || pi_ref) over ``n_samples`` completions per prompt."""
    config = ppo.Config(max_new_tokens=max_new_tokens, temperature=1.0, progress=False)
    rows = [p for p in prompts for _ in range(n_samples)]
    prompt_ids = ppo.encode_prompts(tokenizer, rows)
    batch = ppo.rollout(policy, tokenizer, rows, prompt_ids, true_reward, config, ref_model=ref, seed=seed)
    kl = (batch.logps - batch.ref_logps).sum(-1).double().cpu().numpy()
    scores = batch.scores.double().cpu().numpy()
    sem = float(np.sqrt(len(rows)))
    return {"reward": float(scores.mean()), "reward_sem": float(scores.std() / sem),
            "kl": float(kl.mean()), "kl_sem": float(kl.std() / sem)}


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def sft_model(config: Config, seed: int, log: Callable[[str], None] = print) -> tuple[Any, Any]:
    """Step 1 of the pipeline: (pi_SFT in eval mode, the word tokenizer) for ``seed``."""
    torch.manual_seed(seed)
    tokenizer = sentiment.build_tokenizer()
    base = sentiment.make_model(tokenizer, seed=seed, n_layer=config.n_layer, n_embd=config.n_embd)
    base.to("cuda" if torch.cuda.is_available() else "cpu")  # the trainers also pick a GPU when there is one
    corpus = sentiment.make_corpus(config.corpus_reviews, seed=10_000 + seed)
    stats, seconds = _timed(lambda: sentiment.pretrain(base, tokenizer, corpus, sentiment.PretrainConfig(
        steps=config.pretrain_steps, seed=seed, progress=config.progress)))
    log(f"seed {seed}: pretrained, loss {stats['loss']:.3f} ({seconds:.0f} s)")
    sft_data = sft.load_sft_data(sft_examples(config.sft_examples, seed=20_000 + seed))
    result, seconds = _timed(lambda: sft.train(base, tokenizer, sft_data, sft.Config(
        learning_rate=config.sft_lr, batch_size=32, max_steps=config.sft_steps, epochs=100, max_length=64,
        seed=seed, progress=config.progress)))
    log(f"seed {seed}: SFT loss {result.history[-1]['loss']:.3f} ({seconds:.0f} s)")
    return result.model.eval(), tokenizer


def run_seed(config: Config, seed: int, log: Callable[[str], None] = print) -> tuple[list[dict], TextPairs, Any, Any]:
    """The whole pipeline for one seed; returns (rows, pairs, pi_SFT, tokenizer)."""
    pi_sft, tokenizer = sft_model(config, seed, log)

    train_prompts = sentiment.make_prompts(config.n_train_prompts, seed=30_000 + seed)
    eval_prompts = sentiment.make_prompts(config.n_eval_prompts, seed=40_000 + seed)
    samples = sentiment.generate(pi_sft, tokenizer, train_prompts, config.samples_per_prompt,
                                 max_new_tokens=config.max_new_tokens, seed=seed)
    pairs = label_pairs(train_prompts, samples)
    log(f"seed {seed}: {len(pairs)} labelled pairs from {len(train_prompts)} prompts")

    rows: list[dict[str, Any]] = []

    def record(method: str, beta: float | None, policy: Any, seconds: float) -> None:
        metrics = evaluate(policy.eval(), pi_sft, tokenizer, eval_prompts, config.eval_samples,
                           config.max_new_tokens, seed=50_000 + seed)
        rows.append({"method": method, "beta": beta, "seed": seed, **metrics, "seconds": round(seconds, 1)})
        log(f"seed {seed}: {method:>12} beta={beta}: reward {metrics['reward']:+.3f}, KL {metrics['kl']:.2f} "
            f"({seconds:.0f} s)")

    record("SFT", None, pi_sft, 0.0)
    for beta in config.dpo_betas:
        out, seconds = _timed(lambda: dpo.train(copy.deepcopy(pi_sft), tokenizer, pairs, dpo.Config(
            beta=beta, learning_rate=config.dpo_lr, epochs=config.dpo_epochs, batch_size=config.dpo_batch_size,
            max_length=64, seed=seed, progress=config.progress), ref_model=pi_sft))
        record("DPO", beta, out.model, seconds)

    rm = reward.make_reward_model(pi_sft, tokenizer, seed=seed)
    fitted, seconds = _timed(lambda: reward.train(rm, tokenizer, pairs, reward.Config(
        learning_rate=config.reward_lr, epochs=config.reward_epochs, batch_size=64, max_length=64, seed=seed,
        progress=config.progress)))
    heldout = label_pairs(eval_prompts, sentiment.generate(pi_sft, tokenizer, eval_prompts, config.samples_per_prompt,
                                                           max_new_tokens=config.max_new_tokens, seed=60_000 + seed))
    accuracy = reward.evaluate(fitted.model, tokenizer, heldout)["accuracy"]
    log(f"seed {seed}: reward model held-out pair accuracy {accuracy:.3f} ({seconds:.0f} s)")
    rm_fn = reward.as_reward_fn(fitted.model, tokenizer)
    for name, reward_fn in (("PPO (RM)", rm_fn), ("PPO (true)", true_reward)):
        for beta in config.ppo_betas:
            out, seconds = _timed(lambda: ppo.train(copy.deepcopy(pi_sft), tokenizer, train_prompts, reward_fn,
                                                    ppo.Config(steps=config.ppo_steps, batch_size=config.ppo_batch_size,
                                                               mini_batch_size=config.ppo_batch_size // 2,
                                                               learning_rate=config.ppo_lr, beta=beta,
                                                               max_new_tokens=config.max_new_tokens, seed=seed,
                                                               progress=config.progress),
                                                    ref_model=pi_sft))
            record(name, beta, out.model, seconds)
            rows[-1]["reward_model_accuracy"] = accuracy if name == "PPO (RM)" else None
    return rows, pairs, pi_sft, tokenizer


def run(config: Config | None = None, log: Callable[[str], None] = print) -> Result:
    """Every seed's pipeline (see module doc)."""
    config = config or Config()
    rows: list[dict[str, Any]] = []
    first = None
    for seed in config.seeds:
        seed_rows, pairs, pi_sft, tokenizer = run_seed(config, seed, log)
        rows += seed_rows
        first = first or (pairs, pi_sft, tokenizer)
    return Result(rows, *first)


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and std over seeds of reward and KL per (method, beta)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["method"], row["beta"]), []).append(row)
    out = []
    for (method, beta), members in groups.items():
        rewards = np.array([m["reward"] for m in members])
        kls = np.array([m["kl"] for m in members])
        out.append({"method": method, "beta": beta, "n_seeds": len(members), "reward": float(rewards.mean()),
                    "reward_std": float(rewards.std()), "kl": float(kls.mean()), "kl_std": float(kls.std())})
    return out


STYLES = {"SFT": ("black", "s"), "DPO": ("tab:blue", "o"), "PPO (RM)": ("tab:orange", "^"),
          "PPO (true)": ("tab:green", "v")}


def plot(rows: Sequence[dict[str, Any]], path: Any, title: str = "synthetic sentiment: reward vs KL") -> None:
    """Scatter of ground-truth reward against KL(pi || pi_ref), one point per run, by method."""
    import matplotlib  # why: matplotlib is slow to import and only plotting needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # why: after choosing the Agg backend

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for method, (color, marker) in STYLES.items():
        mine = [r for r in rows if r["method"] == method]
        if mine:
            ax.scatter([r["kl"] for r in mine], [r["reward"] for r in mine], c=color, marker=marker, label=method,
                       alpha=0.8, edgecolors="none")
    ax.set_xlabel("KL(pi || pi_ref), nats per completion")
    ax.set_ylabel("mean ground-truth reward (held-out prompts)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
