"""Imitating a language-model expert: inverse RL against SFT and RLHF, on tasks whose true reward is known.

Issue 20's experiment (docs/irl_for_llms.md). Per task and seed:

1. the start policy pi_SFT (also pi_ref for every method): on ``sentiment`` the frontier experiment's pretrained
   and fine-tuned tiny GPT-2 (``irlhf.llm.tasks.frontier.sft_model``); on ``addition`` a tiny GPT-2 pretrained
   on a corpus whose answers are often wrong (``irlhf.llm.tasks.addition``);
2. ``n_demos`` expert demonstrations {prompt, completion}: on sentiment best-of-``best_of`` samples of pi_SFT
   under the true reward (the lexicon scorer), on addition the scripted expert (always right, surface form
   drawn at random). The true reward is never seen by a learner;
3. every method trains from a copy of pi_SFT on the same demonstrations: SFT (MLE), IQ-Learn offline and online
   (``irlhf.llm.iq_learn``), sequence MaxEnt IRL with RLOO policy steps (``irlhf.llm.seq_maxent``), and from
   the RLHF side a Bradley-Terry reward model + PPO and DPO on pairs (demonstration preferred over a pi_SFT
   sample of the same prompt);
4. each policy samples ``eval_samples`` completions per held-out prompt: mean true reward (accuracy on
   addition), sequence KL(pi || pi_SFT), distinct-1/2, self-BLEU (per prompt, averaged), mean per-token
   entropy, and on addition the number of surface forms among the correct answers; each method that yields a
   reward (IQ-Learn's sum_t r, MaxEnt's R_phi, the BT reward model, DPO's beta log pi/pi_ref) is correlated
   (Spearman) with the true reward on held-out pi_SFT samples.

    result = run(Config(task="addition", seeds=(0,)))
    summarize(result.rows); plot(result.rows, "score_vs_diversity.png")
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

import numpy as np
import torch

from irlhf.core.config import BaseConfig, Check, Positive, PositiveInt, Range
from irlhf.core.errors import ValidationError
from irlhf.core.stats import t_half_width
from irlhf.data.text import TextPairs
from irlhf.eval import text as text_metrics
from irlhf.llm import dpo, iq_learn, ppo, reward, seq_maxent, sft
from irlhf.llm.logps import sequence_logps
from irlhf.llm.tasks import addition, frontier, sentiment
from irlhf.llm.tokenize import TokenizeOptions, collate, encode, pad_id_of

Task = Literal["sentiment", "addition"]
ADDITION_MAX_NEW_TOKENS = 12  # the longest answer form, "23 + 58 = 81" digit by digit, is 9 tokens + EOS
METHODS = ("SFT", "IQ-Learn offline", "IQ-Learn online", "MaxEnt IRL + RLOO", "BT RM + PPO", "DPO")


def _is_seeds(value: Any) -> bool:
    return (isinstance(value, tuple) and len(value) > 0
            and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value))


def _is_methods(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) > 0 and all(m in METHODS for m in value)


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """The experiment's sizes; the defaults are the RESULTS.md run (minutes per seed on 2 CPU cores).

    task ["sentiment"].  seeds [(0, 1, 2)].  methods [all of METHODS].  n_demos [512]: demonstrations, the same
    for every method.  best_of [8]: sentiment's expert is best-of-N of pi_SFT.  n_eval_prompts [64],
    eval_samples [4]: completions per held-out prompt.  max_new_tokens [24] (sentiment; addition uses 12).
    learning_rate [1e-3]: SFT and IQ-Learn (the maximum-likelihood family).  rl_learning_rate [None]: DPO, PPO
    and MaxEnt's policy steps; None = the task's (``TASK_RATES``: sentiment 3e-4, the frontier experiment's DPO
    and PPO rate; addition 1e-4, as 1e-3 moved DPO and PPO 15-20 nats from pi_SFT on its first seed).
    reward_learning_rate [None]: MaxEnt's R_phi and the BT reward model; None = the task's (sentiment 1e-3, the
    frontier's; addition 3e-4).  epochs [5] over the demonstrations
    for the offline methods (SFT, IQ-Learn offline, DPO, the BT model's 10).  online_steps [60]: IQ-Learn
    online and PPO steps of 32 prompts.  maxent_steps [150] reward steps of 32 demonstrations with maxent_k [4]
    samples each, a policy step after every maxent_reward_steps [3].  iq_chi_alpha [10.0]: IQ-Learn's chi^2
    weight 1 / (4 chi_alpha) (0.5, the control default, moved the policy 15 nats and cost half the accuracy on
    addition's first seed; 50 behaves like SFT).  iq_mle_weight [0.0].  kl_beta [0.05]: MaxEnt's and PPO's KL
    coefficient.  dpo_beta [0.1].  digits [1]: addition's operand digits (2-digit sums need a bigger model
    than a CPU run affords: 600 steps reach 2% accuracy).  corpus_size [5000], corpus_error_rate [0.3],
    pretrain_steps [600]: addition's start model, pretrained on a corpus whose answers are wrong at that rate.
    curves [True]: each method at the three settings of its ``CURVES`` knob (SFT's epochs, IQ-Learn's chi_alpha,
    the KL coefficients of MaxEnt, PPO and DPO), tracing a score-diversity curve; False: the values above only.
    progress [False]: the trainers' bars.
    """

    task: Task = "sentiment"
    seeds: Annotated[tuple, Check(_is_seeds, "a non-empty tuple of ints >= 0")] = (0, 1, 2)
    methods: Annotated[tuple, Check(_is_methods, f"a non-empty tuple of {METHODS}")] = METHODS
    n_demos: PositiveInt = 512
    best_of: Annotated[int, Range(2)] = 8
    n_eval_prompts: PositiveInt = 64
    eval_samples: Annotated[int, Range(2)] = 4
    max_new_tokens: PositiveInt = 24
    learning_rate: Positive = 1e-3
    rl_learning_rate: Positive | None = None
    reward_learning_rate: Positive | None = None
    epochs: PositiveInt = 5
    online_steps: PositiveInt = 60
    maxent_steps: PositiveInt = 150
    maxent_k: Annotated[int, Range(2)] = 4
    maxent_reward_steps: PositiveInt = 3
    iq_chi_alpha: Positive = 10.0
    iq_mle_weight: Annotated[float, Range(0)] = 0.0
    kl_beta: Positive = 0.05
    dpo_beta: Positive = 0.1
    digits: Annotated[int, Range(1, 3)] = 1
    corpus_size: PositiveInt = 5000
    corpus_error_rate: Annotated[float, Range(0, 1)] = 0.3
    pretrain_steps: PositiveInt = 600
    curves: bool = True
    progress: bool = False

    def __post_init__(self) -> None:
        for name in ("seeds", "methods"):  # JSON gives lists: store tuples (checks follow)
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        super().__post_init__()

    def rate(self, name: str) -> float:
        """rl_learning_rate or reward_learning_rate as set, else the task's default (``TASK_RATES``)."""
        value = getattr(self, name)
        return TASK_RATES[self.task][name] if value is None else value


# learning rates per task where one setting does not fit both (see Config)
TASK_RATES = {"sentiment": {"rl_learning_rate": 3e-4, "reward_learning_rate": 1e-3},
              "addition": {"rl_learning_rate": 1e-4, "reward_learning_rate": 3e-4}}


@dataclasses.dataclass
class Setup:
    """One task at one seed: what every method gets (tokenizer, start policy, demonstrations, prompts) and what
    only the evaluation sees (true_reward, heldout: pi_SFT samples of held-out prompts with their true scores)."""

    tokenizer: Any
    start: Any
    demos: list[dict[str, str]]
    rejected: list[str]
    eval_prompts: list[str]
    true_reward: Callable[[Sequence[Any], Sequence[str]], np.ndarray]
    heldout: tuple[list[str], list[str], np.ndarray]
    max_new_tokens: int
    surface_form: Callable[[str], str | None] | None = None
    bt_reward_model: Any = None  # fitted once per setup, shared by the PPO runs of every KL coefficient


@dataclasses.dataclass
class Result:
    """rows: one dict per (method, seed) with the metrics of the module doc and the training seconds."""

    rows: list[dict[str, Any]]


# -- the tasks ------------------------------------------------------------------------------------------------
def _sample(policy: Any, tokenizer: Any, prompts: Sequence[str], n: int, max_new_tokens: int, seed: int
            ) -> list[list[str]]:
    """n completions per prompt, each with the leading space that continues the prompt's text ("" if empty)."""
    samples = sentiment.generate(policy, tokenizer, list(prompts), n, max_new_tokens=max_new_tokens, seed=seed)
    return [[" " + t if t else "" for t in texts] for texts in samples]


def sentiment_setup(config: Config, seed: int, log: Callable[[str], None] = print) -> Setup:
    small = frontier.Config(seeds=(seed,), progress=config.progress)
    start, tokenizer = frontier.sft_model(small, seed, log)
    prompts = sentiment.make_prompts(config.n_demos, seed=30_000 + seed)
    candidates = _sample(start, tokenizer, prompts, config.best_of + 1, config.max_new_tokens, seed)
    demos, rejected = [], []
    for prompt, texts in zip(prompts, candidates):
        scores = frontier.true_reward([prompt] * config.best_of, texts[:config.best_of])
        scores = np.where([bool(t) for t in texts[:config.best_of]], scores, -np.inf)  # a demonstration says something
        demos.append({"prompt": prompt, "completion": texts[int(np.argmax(scores))]})
        rejected.append(texts[-1] or " ")  # a fresh pi_SFT sample, not one of the best-of-N; " ": stopped at once
    eval_prompts = sentiment.make_prompts(config.n_eval_prompts, seed=40_000 + seed)
    held = _sample(start, tokenizer, eval_prompts, config.eval_samples, config.max_new_tokens, 60_000 + seed)
    held_prompts = [p for p, texts in zip(eval_prompts, held) for _ in texts]
    held_texts = [t for texts in held for t in texts]
    return Setup(tokenizer, start, demos, rejected, eval_prompts, frontier.true_reward,
                 (held_prompts, held_texts, frontier.true_reward(held_prompts, held_texts)), config.max_new_tokens)


def addition_setup(config: Config, seed: int, log: Callable[[str], None] = print) -> Setup:
    tokenizer = addition.build_tokenizer()
    start = addition.make_model(tokenizer, seed=seed, n_layer=2, n_embd=64)
    start.to("cuda" if torch.cuda.is_available() else "cpu")  # the trainers also pick a GPU when there is one
    corpus = addition.make_corpus(config.corpus_size, seed=10_000 + seed, error_rate=config.corpus_error_rate,
                                  digits=config.digits)
    started = time.perf_counter()
    stats = addition.pretrain(start, tokenizer, corpus, addition.PretrainConfig(
        steps=config.pretrain_steps, seed=seed, progress=config.progress))
    log(f"addition seed {seed}: pretrained, loss {stats['loss']:.3f} ({time.perf_counter() - started:.0f} s)")
    start.eval()
    demos = addition.make_demos(config.n_demos, seed=30_000 + seed, digits=config.digits)
    max_new = ADDITION_MAX_NEW_TOKENS
    rejected = [texts[0] or " " for texts in _sample(start, tokenizer, [d["prompt"] for d in demos], 1, max_new, seed)]
    problems = addition.make_problems(config.n_eval_prompts, seed=40_000 + seed, digits=config.digits)
    eval_prompts = addition.make_prompts(problems, seed=40_000 + seed)
    held = _sample(start, tokenizer, eval_prompts, config.eval_samples, max_new, 60_000 + seed)
    held_prompts = [p for p, texts in zip(eval_prompts, held) for _ in texts]
    held_texts = [t for texts in held for t in texts]
    return Setup(tokenizer, start, demos, rejected, eval_prompts, addition.accuracy,
                 (held_prompts, held_texts, addition.accuracy(held_prompts, held_texts)), max_new,
                 addition.surface_form)


SETUPS: dict[str, Callable[[Config, int, Callable[[str], None]], Setup]] = {
    "sentiment": sentiment_setup, "addition": addition_setup}


# -- the methods: each returns (policy, reward function of (prompts, completions) or None) ---------------------
RewardScorer = Callable[[Sequence[Any], Sequence[str]], np.ndarray] | None


def _pairs(setup: Setup) -> TextPairs:
    """Each demonstration over a fresh pi_SFT sample; a sample equal to its demonstration carries no preference and
    is left out (DPO refuses such pairs)."""
    keep = [k for k, d in enumerate(setup.demos) if d["completion"] != setup.rejected[k]]
    return TextPairs(tuple(setup.demos[k]["prompt"] for k in keep), tuple(setup.demos[k]["completion"] for k in keep),
                     tuple(setup.rejected[k] for k in keep))


def implicit_reward_fn(policy: Any, ref: Any, tokenizer: Any, beta: float) -> Callable[..., np.ndarray]:
    """DPO's implicit reward beta (log pi(y|x) - log pi_ref(y|x)) as a (prompts, completions) -> (N,) function."""
    options, pad_id = TokenizeOptions(max_length=None), pad_id_of(tokenizer)

    @torch.no_grad()
    def score(prompts: Sequence[Any], completions: Sequence[str]) -> np.ndarray:
        encoded = [encode(tokenizer, p, c or tokenizer.eos_token, options) for p, c in zip(prompts, completions)]
        device = next(policy.parameters()).device
        batch = {k: v.to(device) for k, v in collate(encoded, pad_id).items()}
        return (beta * (sequence_logps(policy, batch) - sequence_logps(ref, batch))).double().cpu().numpy()

    return score


def train_method(method: str, setup: Setup, config: Config, seed: int) -> tuple[Any, RewardScorer, dict[str, float]]:
    """Train ``method`` from a copy of pi_SFT on the task's demonstrations (see module doc); returns the policy,
    its reward function (None for SFT) and training statistics for the row (MaxEnt: the mean ESS fraction)."""
    start, tokenizer, demos = setup.start, setup.tokenizer, setup.demos
    policy = copy.deepcopy(start).train()
    common = {"seed": seed, "progress": config.progress}
    rl_lr, reward_lr = config.rate("rl_learning_rate"), config.rate("reward_learning_rate")
    prompts = [d["prompt"] for d in demos]
    if method == "SFT":
        out = sft.train(policy, tokenizer, demos, sft.Config(learning_rate=config.learning_rate, batch_size=32,
                                                               epochs=config.epochs, max_length=64, **common))
        return out.model, None, {}
    if method.startswith("IQ-Learn"):
        online = method.endswith("online")
        out = iq_learn.train(policy, tokenizer, demos, iq_learn.Config(
            learning_rate=config.learning_rate, batch_size=32, max_length=64, chi_alpha=config.iq_chi_alpha,
            mle_weight=config.iq_mle_weight, online=online, max_new_tokens=setup.max_new_tokens,
            **({"max_steps": config.online_steps, "epochs": 100} if online else {"epochs": config.epochs}),
            **common))
        model = out.model.eval()
        return model, lambda p, c: iq_learn.sequence_rewards(model, tokenizer, p, c), {}
    if method == "MaxEnt IRL + RLOO":
        out = seq_maxent.train(policy, tokenizer, demos, seq_maxent.Config(
            steps=config.maxent_steps, reward_steps=config.maxent_reward_steps, batch_size=32,
            k_samples=config.maxent_k, beta=config.kl_beta, reward_learning_rate=reward_lr,
            policy_learning_rate=rl_lr, log_every=10, max_new_tokens=setup.max_new_tokens,
            max_length=64, **common), ref_model=start)
        ess = [row["ess_fraction"] for row in out.history]
        return out.model, reward.as_reward_fn(out.reward_model, tokenizer), {"ess_fraction": float(np.mean(ess))}
    if method == "BT RM + PPO":
        if setup.bt_reward_model is None:
            rm = reward.make_reward_model(start, tokenizer, seed=seed)
            setup.bt_reward_model = reward.train(rm, tokenizer, _pairs(setup), reward.Config(
                learning_rate=reward_lr, epochs=10, batch_size=64, max_length=64, **common)).model
        rm_fn = reward.as_reward_fn(setup.bt_reward_model, tokenizer)
        out = ppo.train(policy, tokenizer, prompts, rm_fn, ppo.Config(
            steps=config.online_steps, batch_size=32, mini_batch_size=16, learning_rate=rl_lr,
            beta=config.kl_beta, max_new_tokens=setup.max_new_tokens, **common), ref_model=start)
        return out.model, rm_fn, {}
    if method == "DPO":
        out = dpo.train(policy, tokenizer, _pairs(setup), dpo.Config(
            beta=config.dpo_beta, learning_rate=rl_lr, epochs=config.epochs, batch_size=32,
            max_length=64, **common), ref_model=start)
        return out.model, implicit_reward_fn(out.model.eval(), start, tokenizer, config.dpo_beta), {}
    raise ValidationError(f"method={method!r}: expected one of {METHODS}")


# -- evaluation -----------------------------------------------------------------------------------------------
def evaluate(policy: Any, reward_fn: RewardScorer, setup: Setup, config: Config, seed: int) -> dict[str, Any]:
    """The metrics of the module doc for one trained policy."""
    policy.eval()
    rows = [p for p in setup.eval_prompts for _ in range(config.eval_samples)]
    sampling = ppo.Config(max_new_tokens=setup.max_new_tokens, temperature=1.0, progress=False)
    batch = ppo.rollout(policy, setup.tokenizer, rows, ppo.encode_prompts(setup.tokenizer, rows), setup.true_reward,
                        sampling, ref_model=setup.start, seed=50_000 + seed)
    completions = batch.completions
    scores = batch.scores.double().cpu().numpy()
    kl = (batch.logps - batch.ref_logps).sum(-1).double().cpu().numpy()
    groups = [completions[k:k + config.eval_samples] for k in range(0, len(completions), config.eval_samples)]
    out: dict[str, Any] = {
        "score": float(scores.mean()), "score_sem": float(scores.std() / np.sqrt(len(scores))),
        "kl": float(kl.mean()),
        "distinct_1": text_metrics.distinct_n(completions, 1), "distinct_2": text_metrics.distinct_n(completions, 2),
        "self_bleu": float(np.mean([text_metrics.self_bleu(g) for g in groups])),
        "entropy": text_metrics.policy_entropy(policy, setup.tokenizer, rows, completions),
    }
    if setup.surface_form is not None:
        forms = {setup.surface_form(c) for c, s in zip(completions, scores) if s > 0}
        out["correct_forms"] = len(forms - {None})
    if reward_fn is not None:
        from scipy.stats import spearmanr  # why: scipy is slow to import; only this metric needs it

        prompts, texts, truth = setup.heldout
        learned = np.asarray(reward_fn(prompts, texts), dtype=np.float64)
        constant = np.ptp(truth) == 0 or np.ptp(learned) == 0  # no ranking to compare: undefined, not a warning
        out["reward_spearman"] = float("nan") if constant else float(spearmanr(learned, truth).statistic)
    return out


# the knob that traces each method's score-diversity curve (``Config.curves``): (Config field, values); the
# middle value is the Config default, so the curve passes through the single-setting run
CURVES: dict[str, tuple[str, tuple[Any, ...]]] = {
    "SFT": ("epochs", (1, 2, 5)),
    "IQ-Learn offline": ("iq_chi_alpha", (1.0, 10.0, 100.0)),
    "IQ-Learn online": ("iq_chi_alpha", (1.0, 10.0, 100.0)),
    "MaxEnt IRL + RLOO": ("kl_beta", (0.01, 0.05, 0.2)),
    "BT RM + PPO": ("kl_beta", (0.01, 0.05, 0.2)),
    "DPO": ("dpo_beta", (0.03, 0.1, 0.5)),
}


def run_seed(config: Config, seed: int, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Every method at one seed: at the Config's settings, or along its ``CURVES`` knob with ``curves``."""
    setup = SETUPS[config.task](config, seed, log)
    runs: list[tuple[str, str | None, Any, Config]] = [("SFT start", None, None, config)]
    for method in config.methods:
        name, values = CURVES[method]
        for value in (values if config.curves else (getattr(config, name),)):
            runs.append((method, name, value, dataclasses.replace(config, **{name: value})))
    rows = []
    for method, knob, value, run_config in runs:
        start_time = time.perf_counter()
        if method == "SFT start":
            policy, reward_fn, extras = setup.start, None, {}
        else:
            policy, reward_fn, extras = train_method(method, setup, run_config, seed)
        seconds = time.perf_counter() - start_time
        metrics = evaluate(policy, reward_fn, setup, run_config, seed)
        setting = None if knob is None else f"{knob}={value}"
        rows.append({"task": config.task, "method": method, "setting": setting, "seed": seed, **metrics, **extras,
                     "seconds": round(seconds, 1)})
        label = method + (f" [{setting}]" if setting else "")
        log(f"{config.task} seed {seed}: {label:>38}: score {metrics['score']:.3f}, "
            f"KL {metrics['kl']:.2f}, distinct-2 {metrics['distinct_2']:.3f}, self-BLEU {metrics['self_bleu']:.1f} "
            f"({seconds:.0f} s)")
    return rows


def run(config: Config | None = None, log: Callable[[str], None] = print) -> Result:
    config = config or Config()
    return Result([row for seed in config.seeds for row in run_seed(config, seed, log)])


NUMBERS = ("score", "kl", "distinct_1", "distinct_2", "self_bleu", "entropy", "correct_forms", "reward_spearman",
           "ess_fraction", "seconds")


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (task, method, setting): n seeds, and mean and 95% interval half-width (t over seeds) of every metric."""
    groups: dict[tuple[str, str, str | None], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["task"], row["method"], row.get("setting")), []).append(row)
    out = []
    for (task, method, setting), members in groups.items():
        summary: dict[str, Any] = {"task": task, "method": method, "setting": setting, "n_seeds": len(members)}
        for key in NUMBERS:
            values = np.array([m[key] for m in members if m.get(key) is not None], dtype=np.float64)
            if len(values) == 0:
                continue
            summary[key], summary[key + "_ci"] = float(values.mean()), t_half_width(values)
        out.append(summary)
    return out


STYLES = {"SFT start": ("black", "s"), "SFT": ("tab:gray", "D"), "IQ-Learn offline": ("tab:blue", "o"),
          "IQ-Learn online": ("tab:cyan", "o"), "MaxEnt IRL + RLOO": ("tab:purple", "P"),
          "BT RM + PPO": ("tab:orange", "^"), "DPO": ("tab:green", "v")}


def plot(rows: Sequence[dict[str, Any]], path: Any, diversity: str = "distinct_2") -> None:
    """Task score against diversity, one panel per task: per method, its seeds' points (faint) and the curve
    through its per-setting means in the order of its ``CURVES`` knob (one point without curves)."""
    import matplotlib  # why: matplotlib is slow to import and only plotting needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # why: after choosing the Agg backend

    tasks = sorted({r["task"] for r in rows})
    fig, axes = plt.subplots(1, len(tasks), figsize=(6.4 * len(tasks), 4.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for method, (color, marker) in STYLES.items():
            mine = [r for r in rows if r["task"] == task and r["method"] == method]
            if not mine:
                continue
            ax.scatter([r[diversity] for r in mine], [r["score"] for r in mine], c=color, marker=marker, alpha=0.25,
                       edgecolors="none")
            settings = list(dict.fromkeys(r.get("setting") for r in mine))  # in run order: the knob's order
            means = [(np.mean([r[diversity] for r in mine if r.get("setting") == s]),
                      np.mean([r["score"] for r in mine if r.get("setting") == s])) for s in settings]
            knob = CURVES.get(method, ("", ()))[0]
            ax.plot(*zip(*means), "-", color=color, marker=marker, ms=8, mec="k",
                    label=method + (f" ({knob})" if len(means) > 1 else ""))
        direction = "lower" if diversity == "self_bleu" else "higher"
        ax.set_xlabel(f"{diversity.replace('_', '-')} of sampled completions ({direction} = more diverse)")
        ax.set_ylabel("true reward" if task == "sentiment" else "accuracy")
        ax.set_title(f"{task}: task score vs diversity (means over seeds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
