"""The reward-KL frontier on the synthetic sentiment task (the DPO paper's first experiment, Rafailov et al.
2023, Fig. 2 left, at a size that runs on a CPU).

Per seed:

1. pretrain a tiny GPT-2 on a generated review corpus (``sentiment.pretrain``), then SFT it on prompt ->
   completion splits of fresh reviews (``irlhf.llm.sft``): pi_SFT, which is also pi_ref for every run below;
2. sample ``samples_per_prompt`` (4) completions for each training prompt from pi_SFT, score them with the
   ground-truth lexicon reward (``sentiment.sentiment_score``) and label all 6 pairs per prompt (ties dropped);
3. train a reward model on the same pairs (the proxy reward), then each method of ``methods`` from pi_SFT:
   offline on the pairs: DPO (every beta of ``dpo_betas``), IPO, DPO's hinge loss and conservative DPO (cDPO,
   label smoothing ``cdpo_epsilon``) at ``variant_betas``, SimPO, ORPO, KTO (the pairs unpaired); online, with
   ``ppo_steps`` x ``ppo_batch_size`` samples each: PPO at ``ppo_betas``, GRPO and RLOO (groups of
   ``group_size``) at ``rl_betas``, each on the reward model ("(RM)") and on the ground-truth reward ("(true)"),
   and online DPO judged by the reward model at ``online_dpo_betas``;
4. evaluate every policy on held-out prompts: mean ground-truth reward of sampled completions (temperature 1),
   the reward model's mean score of the same samples (the proxy: over-optimisation shows as proxy up, gold down)
   and the sequence-level KL(pi || pi_ref) = E_{y ~ pi}[log pi(y|x) - log pi_ref(y|x)] (summed over the
   completion tokens, EOS included), estimated from the same samples; ``extra_metrics`` adds more (diversity).

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
from irlhf.core.stats import t_half_width
from irlhf.data.text import TextPairs
from irlhf.llm import dpo, grpo, kto, online_dpo, orpo, ppo, reward, rloo, sft, simpo
from irlhf.llm.tasks import sentiment

OFFLINE = ("DPO", "IPO", "DPO (hinge)", "cDPO", "SimPO", "ORPO", "KTO")
ONLINE = ("online DPO (RM)", "PPO (RM)", "PPO (true)", "RLOO (RM)", "RLOO (true)", "GRPO (RM)", "GRPO (true)")
METHODS = OFFLINE + ONLINE


def _is_seeds(value: Any) -> bool:
    return (isinstance(value, tuple) and len(value) > 0
            and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value))


def _is_methods(value: Any) -> bool:
    return isinstance(value, tuple) and all(m in METHODS for m in value)


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
    methods [METHODS: all]: the methods to run (SFT is always evaluated).
    dpo_betas [(0.05, 0.1, 1.0, 5.0)], dpo_epochs [3], dpo_lr [3e-4], dpo_batch_size [64]: also the epochs,
    learning rate and batch of every offline method.  variant_betas [(0.1, 1.0)]: IPO's tau, the hinge loss's and
    cDPO's beta; cdpo_epsilon [0.1].  simpo_betas [(2.0,)] (gamma 0.5, the paper's).  orpo_lambdas [(0.1, 1.0)].
    kto_betas [(0.1, 1.0)].
    reward_epochs [10], reward_lr [1e-3] (held-out pair accuracy ~0.83 here; 3 epochs gave 0.67).
    ppo_betas [(0.02, 0.1, 0.5)]: KL coefficients for PPO on the reward model and on the true reward;
    ppo_steps [60] rollouts of ppo_batch_size [32] prompts, ppo_lr [3e-4]. Every online method samples
    ppo_batch_size completions per step for ppo_steps steps (GRPO / RLOO: ppo_batch_size / group_size prompts).
    rl_betas [(0.02, 0.1)]: GRPO's (k3 in the loss) and RLOO's (k1 in the reward) KL coefficients.
    group_size [4]: samples per prompt of GRPO and RLOO.  rl_lr [1e-3]: their learning rate and online DPO's (one
    optimiser step per batch, where PPO takes 8).  online_dpo_betas [(0.1, 1.0)].
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
    methods: Annotated[tuple, Check(_is_methods, f"a tuple of names from {METHODS}")] = METHODS
    variant_betas: Betas = (0.1, 1.0)
    cdpo_epsilon: Annotated[float, Range(0, 0.5, low_open=True, high_open=True)] = 0.1
    simpo_betas: Betas = (2.0,)
    orpo_lambdas: Betas = (0.1, 1.0)
    kto_betas: Betas = (0.1, 1.0)
    rl_betas: Betas = (0.02, 0.1)
    group_size: Annotated[int, Range(2)] = 4
    rl_lr: Positive = 1e-3
    online_dpo_betas: Betas = (0.1, 1.0)
    progress: bool = False

    def __post_init__(self) -> None:
        for name in ("seeds", "dpo_betas", "ppo_betas", "methods", "variant_betas", "simpo_betas", "orpo_lambdas",
                     "kto_betas", "rl_betas", "online_dpo_betas"):  # JSON gives lists: store tuples (checks follow)
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        super().__post_init__()


@dataclasses.dataclass
class Result:
    """rows: one dict per evaluated policy {method, beta, seed, reward, reward_sem, proxy_reward, kl, kl_sem,
    seconds, reward_model_accuracy, and the keys of extra_metrics};
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


def evaluate(policy: Any, ref: Any, tokenizer: Any, prompts: Sequence[str], n_samples: int, max_new_tokens: int,
             seed: int, proxy: Callable[[Sequence[Any], Sequence[str]], Any] | None = None) -> dict[str, float]:
    """Mean ground-truth reward, the ``proxy`` reward's mean score (if given) and sequence KL(pi || pi_ref) over
    ``n_samples`` completions per prompt (``evaluate_samples`` also returns the samples)."""
    return evaluate_samples(policy, ref, tokenizer, prompts, n_samples, max_new_tokens, seed, proxy)[0]


@torch.no_grad()
def evaluate_samples(policy: Any, ref: Any, tokenizer: Any, prompts: Sequence[str], n_samples: int,
                     max_new_tokens: int, seed: int, proxy: Callable[[Sequence[Any], Sequence[str]], Any] | None = None
                     ) -> tuple[dict[str, float], list[str], list[str]]:
    """``evaluate``'s numbers, and the sampled rows' prompts and completion texts."""
    config = ppo.Config(max_new_tokens=max_new_tokens, temperature=1.0, progress=False)
    rows = [p for p in prompts for _ in range(n_samples)]
    prompt_ids = ppo.encode_prompts(tokenizer, rows)
    batch = ppo.rollout(policy, tokenizer, rows, prompt_ids, true_reward, config, ref_model=ref, seed=seed)
    kl = (batch.logps - batch.ref_logps).sum(-1).double().cpu().numpy()
    scores = batch.scores.double().cpu().numpy()
    sem = float(np.sqrt(len(rows)))
    metrics = {"reward": float(scores.mean()), "reward_sem": float(scores.std() / sem),
               "kl": float(kl.mean()), "kl_sem": float(kl.std() / sem)}
    if proxy is not None:
        metrics["proxy_reward"] = float(np.mean(proxy(rows, batch.completions)))
    return metrics, rows, list(batch.completions)


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


ExtraMetrics = Callable[[Any, Any, Sequence[str], Sequence[str]], dict[str, float]]


Runs = list[tuple[str, float, Callable[[Any, Any], Any]]]  # (method, beta, train(policy, ref) -> trained model)


def _offline_runs(config: Config, seed: int, tokenizer: Any, pairs: TextPairs) -> Runs:
    """Each offline run of ``config.methods``, on the labelled pairs."""
    common = dict(learning_rate=config.dpo_lr, epochs=config.dpo_epochs, batch_size=config.dpo_batch_size,
                  max_length=64, seed=seed, progress=config.progress)

    def dpo_run(beta: float, **options: Any) -> Callable[[Any], Any]:
        return lambda policy, ref: dpo.train(policy, tokenizer, pairs, dpo.Config(beta=beta, **common, **options),
                                             ref_model=ref).model

    runs = [("DPO", b, dpo_run(b)) for b in config.dpo_betas]
    runs += [("IPO", b, dpo_run(b, loss_type="ipo")) for b in config.variant_betas]
    runs += [("DPO (hinge)", b, dpo_run(b, loss_type="hinge")) for b in config.variant_betas]
    runs += [("cDPO", b, dpo_run(b, label_smoothing=config.cdpo_epsilon)) for b in config.variant_betas]
    runs += [("SimPO", b, lambda policy, ref, b=b: simpo.train(
        policy, tokenizer, pairs, simpo.Config(beta=b, **common)).model) for b in config.simpo_betas]
    runs += [("ORPO", lam, lambda policy, ref, lam=lam: orpo.train(
        policy, tokenizer, pairs, orpo.Config(lam=lam, **common)).model) for lam in config.orpo_lambdas]
    runs += [("KTO", b, lambda policy, ref, b=b: kto.train(policy, tokenizer, pairs, kto.Config(beta=b, **common),
                                                           ref_model=ref).model) for b in config.kto_betas]
    return [run for run in runs if run[0] in config.methods]


def _online_runs(config: Config, seed: int, tokenizer: Any, prompts: Sequence[str], rewards: dict[str, Any]) -> Runs:
    """Each online run of ``config.methods``, every one with ppo_steps x ppo_batch_size sampled completions."""
    n, g, steps = config.ppo_batch_size, config.group_size, config.ppo_steps
    shared = dict(max_new_tokens=config.max_new_tokens, seed=seed, progress=config.progress)
    configs = {
        "PPO": lambda b: ppo.Config(steps=steps, batch_size=n, mini_batch_size=n // 2, learning_rate=config.ppo_lr,
                                    beta=b, **shared),
        "RLOO": lambda b: rloo.Config(steps=steps, batch_size=max(n // g, 1), num_generations=g,
                                      learning_rate=config.rl_lr, beta=b, **shared),
        "GRPO": lambda b: grpo.Config(steps=steps, batch_size=max(n // g, 1), num_generations=g,
                                      learning_rate=config.rl_lr, beta=b, **shared),
        "online DPO": lambda b: online_dpo.Config(steps=steps, batch_size=max(n // 2, 1), learning_rate=config.rl_lr,
                                                  beta=b, **shared)}
    modules = {"PPO": ppo, "RLOO": rloo, "GRPO": grpo, "online DPO": online_dpo}
    betas = {"PPO": config.ppo_betas, "RLOO": config.rl_betas, "GRPO": config.rl_betas,
             "online DPO": config.online_dpo_betas}
    runs = []
    for method in ONLINE:
        if method not in config.methods:
            continue
        name, source = method[:-1].rsplit(" (", 1)  # "PPO (RM)" -> "PPO", "RM"
        for beta in betas[name]:
            runs.append((method, beta, lambda policy, ref, name=name, beta=beta, source=source: modules[name].train(
                policy, tokenizer, prompts, rewards[source], configs[name](beta), ref_model=ref).model))
    return runs


def run_seed(config: Config, seed: int, log: Callable[[str], None] = print, extra_metrics: ExtraMetrics | None = None
             ) -> tuple[list[dict], TextPairs, Any, Any]:
    """The whole pipeline for one seed; returns (rows, pairs, pi_SFT, tokenizer)."""
    pi_sft, tokenizer = sft_model(config, seed, log)

    train_prompts = sentiment.make_prompts(config.n_train_prompts, seed=30_000 + seed)
    eval_prompts = sentiment.make_prompts(config.n_eval_prompts, seed=40_000 + seed)
    samples = sentiment.generate(pi_sft, tokenizer, train_prompts, config.samples_per_prompt,
                                 max_new_tokens=config.max_new_tokens, seed=seed)
    pairs = label_pairs(train_prompts, samples)
    log(f"seed {seed}: {len(pairs)} labelled pairs from {len(train_prompts)} prompts")

    rm = reward.make_reward_model(pi_sft, tokenizer, seed=seed)
    fitted, seconds = _timed(lambda: reward.train(rm, tokenizer, pairs, reward.Config(
        learning_rate=config.reward_lr, epochs=config.reward_epochs, batch_size=64, max_length=64, seed=seed,
        progress=config.progress)))
    heldout = label_pairs(eval_prompts, sentiment.generate(pi_sft, tokenizer, eval_prompts, config.samples_per_prompt,
                                                           max_new_tokens=config.max_new_tokens, seed=60_000 + seed))
    accuracy = reward.evaluate(fitted.model, tokenizer, heldout)["accuracy"]
    log(f"seed {seed}: reward model held-out pair accuracy {accuracy:.3f} ({seconds:.0f} s)")
    rm_fn = reward.as_reward_fn(fitted.model, tokenizer)

    rows: list[dict[str, Any]] = []

    def record(method: str, beta: float | None, policy: Any, seconds: float) -> None:
        metrics, prompts, completions = evaluate_samples(policy.eval(), pi_sft, tokenizer, eval_prompts,
                                                         config.eval_samples, config.max_new_tokens, seed=50_000 + seed,
                                                         proxy=rm_fn)
        if extra_metrics is not None:
            metrics.update(extra_metrics(policy, tokenizer, prompts, completions))
        rows.append({"method": method, "beta": beta, "seed": seed, **metrics, "seconds": round(seconds, 1),
                     "reward_model_accuracy": accuracy})
        log(f"seed {seed}: {method:>15} beta={beta}: reward {metrics['reward']:+.3f} (proxy "
            f"{metrics['proxy_reward']:+.3f}), KL {metrics['kl']:.2f} ({seconds:.0f} s)")

    record("SFT", None, pi_sft, 0.0)
    runs = (_offline_runs(config, seed, tokenizer, pairs)
            + _online_runs(config, seed, tokenizer, train_prompts, {"RM": rm_fn, "true": true_reward}))
    for method, beta, train in runs:
        policy = copy.deepcopy(pi_sft)
        trained, seconds = _timed(lambda: train(policy, pi_sft))
        record(method, beta, trained, seconds)
    return rows, pairs, pi_sft, tokenizer


def run(config: Config | None = None, log: Callable[[str], None] = print, extra_metrics: ExtraMetrics | None = None
        ) -> Result:
    """Every seed's pipeline (see module doc); ``extra_metrics(policy, tokenizer, prompts, completions)`` adds
    its numbers to each evaluated policy's row (e.g. the diversity measures of ``irlhf.eval.text``)."""
    config = config or Config()
    rows: list[dict[str, Any]] = []
    first = None
    for seed in config.seeds:
        seed_rows, pairs, pi_sft, tokenizer = run_seed(config, seed, log, extra_metrics)
        rows += seed_rows
        first = first or (pairs, pi_sft, tokenizer)
    return Result(rows, *first)


SUMMARIZED = ("reward", "proxy_reward", "kl", "distinct_1", "distinct_2", "self_bleu", "entropy", "seconds")


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (method, beta): n seeds, and the mean, std and 95% t-interval half-width ("_ci") over seeds of every
    number in SUMMARIZED that the rows have."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["method"], row["beta"]), []).append(row)
    out = []
    for (method, beta), members in groups.items():
        summary: dict[str, Any] = {"method": method, "beta": beta, "n_seeds": len(members)}
        for key in SUMMARIZED:
            values = np.array([m[key] for m in members if m.get(key) is not None], dtype=np.float64)
            if len(values):
                summary.update({key: float(values.mean()), f"{key}_std": float(values.std()),
                                f"{key}_ci": t_half_width(values)})
        out.append(summary)
    return out


STYLES = {"SFT": ("black", "s"), "DPO": ("tab:blue", "o"), "IPO": ("tab:cyan", "o"), "DPO (hinge)": ("navy", "o"),
          "cDPO": ("tab:purple", "o"), "SimPO": ("tab:pink", "D"), "ORPO": ("tab:olive", "D"),
          "KTO": ("tab:brown", "P"), "online DPO (RM)": ("tab:red", "X"), "PPO (RM)": ("tab:orange", "^"),
          "PPO (true)": ("tab:green", "v"), "RLOO (RM)": ("gold", "<"), "RLOO (true)": ("limegreen", ">"),
          "GRPO (RM)": ("darkorange", "*"), "GRPO (true)": ("darkgreen", "*")}


def plot(rows: Sequence[dict[str, Any]], path: Any, title: str = "synthetic sentiment: reward vs KL") -> None:
    """Left: ground-truth reward against KL(pi || pi_ref), the mean over seeds per (method, beta) with 95%
    intervals in both directions (single runs as points). Right, when rows have the reward model's score: the
    methods trained on the reward model, gold (filled) and proxy (open) reward against KL: over-optimisation is
    the proxy rising while the gold reward falls."""
    import matplotlib  # why: matplotlib is slow to import and only plotting needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # why: after choosing the Agg backend

    summary = summarize(rows)
    proxy = any(r.get("proxy_reward") is not None for r in rows)
    fig, axes = plt.subplots(1, 2 if proxy else 1, figsize=(13 if proxy else 7, 5.2), squeeze=False)
    ax = axes[0, 0]
    for method, (color, marker) in STYLES.items():
        mine = [s for s in summary if s["method"] == method]
        if not mine:
            continue
        x, y = [s["kl"] for s in mine], [s["reward"] for s in mine]
        errors = {} if mine[0]["n_seeds"] < 2 else dict(xerr=[s["kl_ci"] for s in mine],
                                                        yerr=[s["reward_ci"] for s in mine])
        ax.errorbar(x, y, **errors, color=color, marker=marker, ls="none", label=method, alpha=0.85, capsize=2,
                    lw=0.8)
    kl_label = "KL(pi || pi_ref), nats per completion (linear below 1, log above)"
    ax.set(xlabel=kl_label, ylabel="mean ground-truth reward (held-out prompts)", title=title)
    ax.set_xscale("symlog", linthresh=1.0)  # the KLs span 0.05 to 100+ nats
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    if proxy:  # gold on the left axis, the reward model's score (another scale) on the right
        ax = axes[0, 1]
        right = ax.twinx()
        for method, (color, marker) in STYLES.items():
            mine = sorted((s for s in summary if s["method"] == method and method.endswith("(RM)")),
                          key=lambda s: s["kl"])
            if mine:
                kl = [s["kl"] for s in mine]
                ax.plot(kl, [s["reward"] for s in mine], color=color, marker=marker, label=f"{method}: gold")
                right.plot(kl, [s["proxy_reward"] for s in mine], color=color, marker=marker, ls="--",
                           markerfacecolor="none", label=f"{method}: proxy")
        ax.set(xlabel=kl_label, ylabel="gold: mean ground-truth reward (solid)",
               title="trained on the reward model: gold vs proxy reward")
        right.set_ylabel("proxy: mean reward-model score (dashed)")
        ax.set_xscale("symlog", linthresh=1.0)
        ax.grid(alpha=0.3)
        lines = ax.get_legend_handles_labels()
        more = right.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
