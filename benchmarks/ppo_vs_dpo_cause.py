"""Why does DPO beat PPO only at small KL on the synthetic sentiment task? Runs that isolate the cause.

    python benchmarks/ppo_vs_dpo_cause.py                      # every group: tiny seeds 0 1, big seed 0
    python benchmarks/ppo_vs_dpo_cause.py --groups base dpo_data --seeds 0

From scratch the default run takes about 70 min of one core (CPU-2, one thread; 52 min of it training, 4.5 min
pretraining the big model); cached rows are skipped, so a rerun only redraws the plot and the table. Results and
the explanation: docs/llm.md ("Why DPO led PPO only at small KL here").

Everything reuses the pieces of ``irlhf.llm.tasks.frontier`` (sft_model, label_pairs, true_reward, the PPO/DPO
calls of run_seed) with its defaults: per seed the same pi_SFT (cached in /tmp/ppo_dpo_cache/<size>-seed<N>, so
every variant starts from the same model), the same 256 training prompts, the same 1,520-ish labelled pairs (4
pi_SFT samples per prompt, all pairs) and the same 64 held-out prompts. Each variant changes ONE thing:

  base        the frontier.py runs: DPO (3 epochs, lr 3e-4) at beta 0.05/0.1/0.3/1/5; PPO on the true reward
              (60 rollouts of 32, lr 3e-4) at beta 0.02/0.1/0.5/1/2 (1 and 2 added to reach small KL)
  optimal     no training: the KL-regularised optimum pi* ~ pi_SFT exp(r / beta) (self-normalised importance
              weights over 256 pi_SFT samples per held-out prompt) and best-of-n (n = 2..64, KL = log n - (n-1)/n):
              the frontier any method could reach
  ppo_budget  (a) PPO with 3x the rollouts (180), or lr 1e-4 (a third), or 32 rollouts (1,024 samples = DPO's data)
  ppo_noise   (a) the same samples with less optimiser noise: lr 1e-4 for 180 rollouts; 1 PPO epoch per rollout
              (default 4); 15 rollouts of 128 prompts (the same 1,920 samples, 4x fewer, larger steps)
  ppo_kl      (c) k3 instead of k1 in the per-token reward; the whole sequence KL charged at the last token
  ppo_value   (d) a separate value network (a copy of pi_SFT); vf_coef 0.5 (default 0.1); advantages not whitened
  ppo_temp    (e) PPO sampling (and log-probs) at temperature 0.7 instead of 1
  dpo_data    (b) DPO with 8 samples per prompt (all 28 pairs), with 1,024 prompts x 4 samples, and with 12 epochs
              on the base pairs (the same number of gradient steps as the 4x data: separates data from steps)
  dpo_epochs  (b) DPO with 12 epochs on the base pairs at beta 0.3/3/5 as well: DPO's frontier when trained longer
  big         model size: a GPT-2 with 4 layers of width 128 (20,000 reviews, 1,500 pretraining steps); its pi*,
              DPO at beta 0.1/0.3/1/5 and PPO at 0.02/0.1/0.5/2 with the base settings (same prompts, pairs recipe)

The SFT row of each seed also reports "coherence": over pi_SFT samples (16 per held-out prompt) with at least two
sentiment words, the correlation of the first sentiment word's sign with the mean sign of the others (the same on
2,000 corpus reviews: "coherence_corpus"), i.e. whether the model keeps a review's sentiment.

(f), the eval: every row reports the k1 estimate the frontier uses (samples from pi at temperature 1) AND the exact
chain-rule KL, sum_t KL(pi(.|y<t) || pi_ref(.|y<t)) along the same samples (same expectation, lower variance),
plus where the k1 KL is spent: on sentiment words, on neutral words, on EOS; and the words per completion.

Evaluation: 16 samples (temperature 1) per held-out prompt (1,024 completions; frontier.py uses 4). Torch uses one
thread. Results are cached per (size, seed, variant, beta) in /tmp/ppo_dpo_cache/results.json (--fresh to redo);
writes benchmarks/out/ppo_vs_dpo_cause.json (every row, with training seconds) and .png (reward vs KL, 4 panels) and
prints a markdown table of the means over seeds.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from irlhf.llm import dpo, ppo
from irlhf.llm.rollout import policy_forward
from irlhf.llm.tasks import frontier, sentiment

OUT = Path(__file__).resolve().parent / "out"
CACHE = Path("/tmp/ppo_dpo_cache")
EVAL_SAMPLES = 16
SIZES = {"tiny": {}, "big": {"n_layer": 4, "n_embd": 128, "corpus_reviews": 20_000, "pretrain_steps": 1500}}
GROUPS = ("base", "optimal", "ppo_budget", "ppo_noise", "ppo_kl", "ppo_value", "ppo_temp", "dpo_data", "dpo_epochs",
          "big")
DPO_BETAS = (0.05, 0.1, 0.3, 1.0, 5.0)
PPO_BETAS = (0.02, 0.1, 0.5, 1.0, 2.0)
VARIANT_BETAS = (0.1, 0.5, 2.0)  # PPO variants: a large, a middle and a small KL
DPO_VARIANT_BETAS = (0.1, 1.0)
SENTIMENT_WORDS = frozenset(sentiment.POSITIVE) | frozenset(sentiment.NEGATIVE)


class Context:
    """One seed's shared pieces: pi_SFT, tokenizer, prompts, base pairs."""

    def __init__(self, size: str, seed: int) -> None:
        self.size, self.seed = size, seed
        self.config = frontier.Config(seeds=(seed,), **SIZES[size])
        self.sft, self.tokenizer = load_sft(self.config, size, seed)
        self.train_prompts = sentiment.make_prompts(self.config.n_train_prompts, seed=30_000 + seed)
        self.eval_prompts = sentiment.make_prompts(self.config.n_eval_prompts, seed=40_000 + seed)
        self.pairs = self.make_pairs(self.train_prompts, self.config.samples_per_prompt)

    def make_pairs(self, prompts: list[str], per_prompt: int) -> Any:
        samples = sentiment.generate(self.sft, self.tokenizer, prompts, per_prompt,
                                     max_new_tokens=self.config.max_new_tokens, seed=self.seed)
        return frontier.label_pairs(prompts, samples)


def load_sft(config: frontier.Config, size: str, seed: int) -> tuple[Any, Any]:
    """pi_SFT from the cache, or trained by ``frontier.sft_model`` and cached."""
    from transformers import GPT2LMHeadModel  # why: slow import, only needed here

    path = CACHE / f"{size}-seed{seed}"
    if not (path / "config.json").exists():
        model, tokenizer = frontier.sft_model(config, seed)
        model.save_pretrained(path)
        return model, tokenizer
    return GPT2LMHeadModel.from_pretrained(path).eval(), sentiment.build_tokenizer()


# --------------------------------------------------------------------------------------------- measurement

@torch.no_grad()
def measure(policy: Any, ctx: Context) -> dict[str, float]:
    """frontier.evaluate's reward and k1 KL (16 samples per held-out prompt), plus the exact chain-rule KL, where
    the k1 KL is spent (sentiment words / neutral words / EOS) and words per completion."""
    policy = policy.eval()
    tok = ctx.tokenizer
    config = ppo.Config(max_new_tokens=ctx.config.max_new_tokens, temperature=1.0, progress=False)
    rows = [p for p in ctx.eval_prompts for _ in range(EVAL_SAMPLES)]
    batch = ppo.rollout(policy, tok, rows, ppo.encode_prompts(tok, rows), frontier.true_reward, config,
                        ref_model=ctx.sft, seed=50_000 + ctx.seed)
    mask = batch.completion_mask
    k1 = torch.where(mask, batch.logps - batch.ref_logps, 0.0).double()
    _, _, logits = policy_forward(policy, batch.input_ids, batch.attention_mask, mask, 1.0)
    _, _, ref_logits = policy_forward(ctx.sft, batch.input_ids, batch.attention_mask, mask, 1.0)
    logp, logq = torch.log_softmax(logits[:, :-1].double(), -1), torch.log_softmax(ref_logits[:, :-1].double(), -1)
    exact = torch.zeros_like(k1)
    exact[:, 1:] = (logp.exp() * (logp - logq)).sum(-1)
    exact = torch.where(mask, exact, 0.0)
    sentiment_ids = torch.tensor([tok.convert_tokens_to_ids(w) for w in (*sentiment.POSITIVE, *sentiment.NEGATIVE)])
    is_sentiment = torch.isin(batch.input_ids, sentiment_ids) & mask
    is_eos = (batch.input_ids == tok.eos_token_id) & mask
    words = [c.split() for c in batch.completions]
    n = float(np.sqrt(len(rows)))
    seq_k1 = k1.sum(-1).numpy()
    scores = batch.scores.double().numpy()
    return {"reward": float(scores.mean()), "reward_sem": float(scores.std() / n),
            "kl": float(seq_k1.mean()), "kl_sem": float(seq_k1.std() / n),
            "kl_exact": float(exact.sum(-1).mean()), "kl_exact_sem": float(exact.sum(-1).std() / n),
            "kl_sentiment_words": float(torch.where(is_sentiment, k1, 0.0).sum(-1).mean()),
            "kl_eos": float(torch.where(is_eos, k1, 0.0).sum(-1).mean()),
            "kl_neutral_words": float(torch.where(mask & ~is_sentiment & ~is_eos, k1, 0.0).sum(-1).mean()),
            "words": float(np.mean([len(w) for w in words])),
            "positive_words": float(np.mean([sum(x in sentiment.POSITIVE for x in w) for w in words])),
            "negative_words": float(np.mean([sum(x in sentiment.NEGATIVE for x in w) for w in words])),
            "eos_fraction": float(batch.has_eos.float().mean())}


def _coherence(texts: list[str]) -> float:
    first, rest = [], []
    for text in texts:
        signs = [1.0 if w in sentiment.POSITIVE else -1.0 for w in text.split() if w in SENTIMENT_WORDS]
        if len(signs) >= 2:
            first.append(signs[0])
            rest.append(float(np.mean(signs[1:])))
    return float(np.corrcoef(first, rest)[0, 1])


def coherence(ctx: Context) -> dict[str, float]:
    """Does the model keep a review's sentiment? (see the module doc)"""
    samples = sentiment.generate(ctx.sft, ctx.tokenizer, ctx.eval_prompts, EVAL_SAMPLES,
                                 max_new_tokens=ctx.config.max_new_tokens, seed=80_000 + ctx.seed)
    texts = [p + " " + c for p, cs in zip(ctx.eval_prompts, samples) for c in cs]
    return {"coherence": _coherence(texts), "coherence_corpus": _coherence(sentiment.make_corpus(2000, seed=90_000))}


def optimal_rows(ctx: Context, n: int = 256) -> list[dict[str, Any]]:
    """The KL-regularised optimum pi* ~ pi_SFT exp(r / beta) by self-normalised importance weights over n pi_SFT
    samples per held-out prompt (its KL is that of the reweighted sample, <= log n), and best-of-n."""
    samples = sentiment.generate(ctx.sft, ctx.tokenizer, ctx.eval_prompts, n,
                                 max_new_tokens=ctx.config.max_new_tokens, seed=70_000 + ctx.seed)
    r = np.array([frontier.true_reward(None, s) for s in samples])  # (prompts, n)
    rows = []
    for beta in (2.0, 1.0, 0.5, 0.3, 0.2, 0.15, 0.1, 0.07):
        logw = r / beta
        w = np.exp(logw - logw.max(1, keepdims=True))
        w /= w.sum(1, keepdims=True)
        kl = (w * np.log(np.maximum(w * n, 1e-300))).sum(1)
        rows.append({"method": "optimal pi*", "beta": beta, "reward": float((w * r).sum(1).mean()),
                     "kl": float(kl.mean()), "ess": float((1 / (w ** 2).sum(1)).mean())})
    rng = np.random.default_rng(ctx.seed)
    for k in (2, 4, 8, 16, 64):
        best = np.mean([r[:, rng.choice(n, k, replace=False)].max(1).mean() for _ in range(50)])
        rows.append({"method": "best-of-n", "beta": k, "reward": float(best), "kl": float(np.log(k) - (k - 1) / k)})
    return rows


# --------------------------------------------------------------------------------------------- trainers

def train_dpo(ctx: Context, beta: float, pairs: Any = None, epochs: int | None = None) -> Any:
    c = ctx.config
    out = dpo.train(copy.deepcopy(ctx.sft), ctx.tokenizer, ctx.pairs if pairs is None else pairs, dpo.Config(
        beta=beta, learning_rate=c.dpo_lr, epochs=epochs or c.dpo_epochs, batch_size=c.dpo_batch_size,
        max_length=64, seed=ctx.seed, progress=False), ref_model=ctx.sft)
    return out.model


@contextlib.contextmanager
def sequence_kl_reward() -> Iterator[None]:
    """PPO's reward with the whole sequence KL (sum_t kl_t) charged at the last completion token, not per token."""
    original = ppo.per_token_rewards

    def at_the_end(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
        total = torch.where(mask, kl.float(), 0.0).sum(-1)
        return original(scores - beta * total, torch.zeros_like(kl), mask, 0.0)

    ppo.per_token_rewards = at_the_end
    try:
        yield
    finally:
        ppo.per_token_rewards = original


def train_ppo(ctx: Context, beta: float, separate_value: bool = False, sequence_kl: bool = False,
              **changes: Any) -> Any:
    c = ctx.config
    config = ppo.Config(steps=c.ppo_steps, batch_size=c.ppo_batch_size, mini_batch_size=c.ppo_batch_size // 2,
                        learning_rate=c.ppo_lr, beta=beta, max_new_tokens=c.max_new_tokens, seed=ctx.seed,
                        progress=False).replace(**changes)
    value_model = copy.deepcopy(ctx.sft) if separate_value else None
    with sequence_kl_reward() if sequence_kl else contextlib.nullcontext():
        out = ppo.train(copy.deepcopy(ctx.sft), ctx.tokenizer, ctx.train_prompts, frontier.true_reward, config,
                        ref_model=ctx.sft, value_model=value_model)
    return out.model


def variants(ctx: Context, group: str) -> list[tuple[str, str, float, Callable[[], Any]]]:
    """(variant, method, beta, train) for one group; train() returns the policy to evaluate."""
    out: list[tuple[str, str, float, Callable[[], Any]]] = []

    def add(variant: str, method: str, betas: tuple, fn: Callable[[float], Any]) -> None:
        out.extend((variant, method, b, (lambda b=b: fn(b))) for b in betas)

    if group == "base":
        add("base", "DPO", DPO_BETAS, lambda b: train_dpo(ctx, b))
        add("base", "PPO (true)", PPO_BETAS, lambda b: train_ppo(ctx, b))
    elif group == "big":
        add("base", "DPO", (0.1, 0.3, 1.0, 5.0), lambda b: train_dpo(ctx, b))
        add("base", "PPO (true)", (0.02, 0.1, 0.5, 2.0), lambda b: train_ppo(ctx, b))
    elif group == "ppo_budget":
        add("ppo 180 rollouts", "PPO (true)", VARIANT_BETAS, lambda b: train_ppo(ctx, b, steps=180))
        add("ppo lr 1e-4", "PPO (true)", VARIANT_BETAS, lambda b: train_ppo(ctx, b, learning_rate=1e-4))
        add("ppo 32 rollouts", "PPO (true)", VARIANT_BETAS, lambda b: train_ppo(ctx, b, steps=32))
    elif group == "ppo_noise":
        add("ppo lr 1e-4 x 180 rollouts", "PPO (true)", VARIANT_BETAS,
            lambda b: train_ppo(ctx, b, learning_rate=1e-4, steps=180))
        add("ppo 1 epoch", "PPO (true)", VARIANT_BETAS, lambda b: train_ppo(ctx, b, ppo_epochs=1))
        add("ppo batch 128 x 15 rollouts", "PPO (true)", VARIANT_BETAS,
            lambda b: train_ppo(ctx, b, batch_size=128, mini_batch_size=64, steps=15))
    elif group == "ppo_kl":
        add("ppo k3", "PPO (true)", VARIANT_BETAS, lambda b: train_ppo(ctx, b, kl_estimator="k3"))
        add("ppo sequence KL", "PPO (true)", VARIANT_BETAS, lambda b: train_ppo(ctx, b, sequence_kl=True))
    elif group == "ppo_value":
        add("ppo separate value net", "PPO (true)", VARIANT_BETAS, lambda b: train_ppo(ctx, b, separate_value=True))
        add("ppo vf_coef 0.5", "PPO (true)", VARIANT_BETAS, lambda b: train_ppo(ctx, b, vf_coef=0.5))
        add("ppo no whitening", "PPO (true)", VARIANT_BETAS, lambda b: train_ppo(ctx, b, whiten_advantages=False))
    elif group == "ppo_temp":
        add("ppo temperature 0.7", "PPO (true)", VARIANT_BETAS, lambda b: train_ppo(ctx, b, temperature=0.7))
    elif group == "dpo_data":
        lazy: dict[str, Any] = {}

        def pairs(key: str, prompts: Callable[[], list[str]], per_prompt: int) -> Any:
            if key not in lazy:
                lazy[key] = ctx.make_pairs(prompts(), per_prompt)
            return lazy[key]

        add("dpo 8 samples/prompt", "DPO", DPO_VARIANT_BETAS, lambda b: train_dpo(ctx, b, pairs(
            "spp8", lambda: ctx.train_prompts, 8)))
        add("dpo 1024 prompts", "DPO", DPO_VARIANT_BETAS, lambda b: train_dpo(ctx, b, pairs(
            "p1024", lambda: sentiment.make_prompts(1024, seed=30_000 + ctx.seed), 4)))
        add("dpo 12 epochs", "DPO", DPO_VARIANT_BETAS, lambda b: train_dpo(ctx, b, epochs=12))
    elif group == "dpo_epochs":
        add("dpo 12 epochs", "DPO", (0.3, 3.0, 5.0), lambda b: train_dpo(ctx, b, epochs=12))
    return out


# --------------------------------------------------------------------------------------------- driver

PANELS = (
    ("as frontier.py runs them (tiny, 2 seeds)", "tiny", 12,
     [("DPO", "base", "tab:blue"), ("PPO (true)", "base", "tab:green")]),
    ("(b) DPO trained longer or on more data", "tiny", 12,
     [("DPO", "base", "tab:blue"), ("DPO", "dpo 12 epochs", "navy"), ("DPO", "dpo 8 samples/prompt", "tab:purple"),
      ("DPO", "dpo 1024 prompts", "tab:cyan"), ("PPO (true)", "base", "tab:green")]),
    ("(a, c, d, e) PPO variants, small KL", "tiny", 4,
     [("DPO", "base", "tab:blue"), ("DPO", "dpo 12 epochs", "navy"), ("PPO (true)", "base", "tab:green"),
      ("PPO (true)", "ppo lr 1e-4 x 180 rollouts", "tab:olive"), ("PPO (true)", "ppo 1 epoch", "tab:orange"),
      ("PPO (true)", "ppo batch 128 x 15 rollouts", "tab:brown"), ("PPO (true)", "ppo 180 rollouts", "tab:pink"),
      ("PPO (true)", "ppo k3", "tab:red"), ("PPO (true)", "ppo sequence KL", "tab:gray"),
      ("PPO (true)", "ppo separate value net", "lightgreen"), ("PPO (true)", "ppo vf_coef 0.5", "lightgreen"),
      ("PPO (true)", "ppo no whitening", "lightgreen"), ("PPO (true)", "ppo temperature 0.7", "gold")]),
    ("model size: 4 layers x 128 (1 seed)", "big", 12,
     [("DPO", "base", "tab:blue"), ("PPO (true)", "base", "tab:green")]),
)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Reward against KL, one line per (variant, seed) joined in KL order; pi* (dashed) is the best possible."""
    import matplotlib  # why: slow import, only for the plot

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # why: after choosing the Agg backend

    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    for ax, (title, size, xmax, lines) in zip(axes.flat, PANELS):
        for seed in sorted({r["seed"] for r in rows if r["size"] == size}):
            opt = sorted((r for r in rows if r["size"] == size and r["seed"] == seed and r["method"] == "optimal pi*"),
                         key=lambda r: r["kl"])
            ax.plot([0] + [r["kl"] for r in opt], [0] + [r["reward"] for r in opt], "k--", lw=1,
                    label="optimal pi* ~ pi_SFT exp(r/beta)" if seed == 0 else None)
            for method, variant, color in lines:
                pts = sorted((r for r in rows if r["size"] == size and r["seed"] == seed and r["method"] == method
                              and r["variant"] == variant), key=lambda r: r["kl"])
                if pts:
                    ax.plot([p["kl"] for p in pts], [p["reward"] for p in pts], "o-", color=color, ms=4, alpha=0.85,
                            label=f"{method}: {variant}" if seed == 0 else None)
        ax.set_title(title)
        ax.set_xlabel("KL(pi || pi_SFT), nats per completion")
        ax.set_ylabel("mean true reward, held-out prompts")
        ax.set_xlim(0, xmax)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6.5, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: mean over seeds per (size, variant, method, beta) of reward, KL (k1 and exact), KL on neutral words,
    and the objective of PPO's own beta, reward - beta KL."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if row["variant"] != "optimal":
            groups.setdefault((row["size"], row["variant"], row["method"], row["beta"]), []).append(row)
    lines = ["| size | variant | method | beta | seeds | reward | KL k1 (exact) | KL on neutral words | per seed "
             "(reward @ KL) |", "|---|---|---|---|---|---|---|---|---|"]
    for (size, variant, method, beta), members in groups.items():
        mean = {k: float(np.mean([m[k] for m in members])) for k in ("reward", "kl", "kl_exact", "kl_neutral_words")}
        seeds = ", ".join(f"{m['reward']:+.2f} @ {m['kl']:.2f}" for m in sorted(members, key=lambda m: m["seed"]))
        lines.append(f"| {size} | {variant} | {method} | {beta if beta is not None else '-'} | {len(members)} | "
                     f"{mean['reward']:+.3f} | {mean['kl']:.2f} ({mean['kl_exact']:.2f}) | "
                     f"{mean['kl_neutral_words']:.2f} | {seeds} |")
    for row in rows:
        if row["variant"] == "optimal" and row["method"] == "optimal pi*":
            lines.append(f"| {row['size']} | optimal (seed {row['seed']}) | pi* ~ pi_SFT exp(r/beta) | {row['beta']} | "
                         f"1 | {row['reward']:+.3f} | {row['kl']:.2f} | - | - |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--big-seeds", type=int, nargs="+", default=[0], help="seeds of the 'big' group")
    parser.add_argument("--groups", nargs="+", default=list(GROUPS), choices=GROUPS)
    parser.add_argument("--fresh", action="store_true", help="ignore cached results")
    args = parser.parse_args()
    torch.set_num_threads(1)
    CACHE.mkdir(parents=True, exist_ok=True)
    store = CACHE / "results.json"
    cached: dict[str, dict] = {} if args.fresh or not store.exists() else json.loads(store.read_text())
    start = time.perf_counter()
    for group in args.groups:
        size = "big" if group == "big" else "tiny"
        for seed in (args.big_seeds if group == "big" else args.seeds):
            ctx = Context(size, seed)
            optimal_key = f"{size}|{seed}|optimal|optimal"
            if group in ("optimal", "big") and optimal_key not in cached:
                t = time.perf_counter()
                rows = optimal_rows(ctx)
                for row in rows:
                    row.update(size=size, seed=seed, variant="optimal", seconds=round(time.perf_counter() - t, 1))
                cached[optimal_key] = {"rows": rows}
                store.write_text(json.dumps(cached, indent=1))
            if f"{size}|{seed}|SFT" not in cached:
                cached[f"{size}|{seed}|SFT"] = {"rows": [{"method": "SFT", "variant": "base", "beta": None,
                                                          "size": size, "seed": seed, "seconds": 0.0,
                                                          **measure(ctx.sft, ctx), **coherence(ctx)}]}
            for variant, method, beta, fn in variants(ctx, group):
                key = f"{size}|{seed}|{variant}|{method}|{beta}"
                if key in cached:
                    continue
                t = time.perf_counter()
                policy = fn()
                seconds = time.perf_counter() - t
                row = {"method": method, "variant": variant, "beta": beta, "size": size, "seed": seed,
                       "seconds": round(seconds, 1), **measure(policy, ctx)}
                cached[key] = {"rows": [row]}
                store.write_text(json.dumps(cached, indent=1))
                print(f"{size} seed {seed} {variant:>24} {method:>10} beta {beta:<5}: reward {row['reward']:+.3f} "
                      f"KL {row['kl']:.2f} (exact {row['kl_exact']:.2f}; sentiment {row['kl_sentiment_words']:.2f}, "
                      f"neutral {row['kl_neutral_words']:.2f}, eos {row['kl_eos']:.2f}) words {row['words']:.1f} "
                      f"+{row['positive_words']:.2f}/-{row['negative_words']:.2f} ({seconds:.0f} s)", flush=True)
    rows = [row for entry in cached.values() for row in entry["rows"]]
    minutes = (time.perf_counter() - start) / 60
    train_minutes = sum(r.get("seconds", 0.0) for r in rows if r["variant"] != "optimal") / 60
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "ppo_vs_dpo_cause.json").write_text(json.dumps(
        {"eval_samples_per_prompt": EVAL_SAMPLES, "minutes_this_call": minutes,
         "training_minutes_all_rows": train_minutes, "rows": rows}, indent=1))
    plot(rows, OUT / "ppo_vs_dpo_cause.png")
    print(table(rows))
    print(f"\n{minutes:.1f} min this call ({train_minutes:.1f} min of training in all cached rows); wrote "
          f"{OUT / 'ppo_vs_dpo_cause.json'} and .png")


if __name__ == "__main__":
    main()
