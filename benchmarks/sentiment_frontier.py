"""The reward-KL frontier of every preference method on the synthetic sentiment task (``irlhf.llm.tasks.frontier``),
with the diversity of each policy's samples.

    python benchmarks/sentiment_frontier.py              # the RESULTS.md run: 3 seeds, every method
    python benchmarks/sentiment_frontier.py --quick      # one seed, smaller budgets: a smoke run, not a result
    python benchmarks/sentiment_frontier.py --seeds 0 --methods DPO "GRPO (true)"   # a subset
    python benchmarks/sentiment_frontier.py --merge a.json b.json    # one table and plot from seeds run apart

Writes benchmarks/out/sentiment_frontier.json (every run) and .png (reward vs KL with 95% intervals; gold vs proxy
reward for the methods trained on the reward model) and prints a markdown table of the mean and 95% t-interval
over seeds per method and beta: ground-truth reward, the reward model's score (proxy), KL, and the diversity of
the held-out samples (distinct-1 / distinct-2 over all samples, self-BLEU, the policy's entropy per completion
token; ``irlhf.eval.text``). Torch uses one thread (run seeds in parallel processes with --seeds and --merge).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from irlhf.eval import text
from irlhf.llm.tasks import frontier

OUT = Path(__file__).resolve().parent / "out"


def diversity(policy, tokenizer, prompts, completions) -> dict[str, float]:
    """Distinct-1/2 and self-BLEU of the samples, entropy per token of the policy on them."""
    words = [c if c.strip() else "<empty>" for c in completions]
    return {"distinct_1": text.distinct_n(words, 1), "distinct_2": text.distinct_n(words, 2),
            "self_bleu": text.self_bleu(words), "entropy": text.policy_entropy(policy, tokenizer, prompts, completions)}


def table(summary: list[dict]) -> str:
    def cell(row: dict, key: str, digits: int) -> str:
        if key not in row:
            return "-"
        ci = row[f"{key}_ci"]
        return f"{row[key]:.{digits}f}" + ("" if ci != ci else f" +- {ci:.{digits}f}")  # ci != ci: NaN, one seed

    lines = ["| method | beta | seeds | reward | proxy (RM) | KL (nats) | distinct-1 | distinct-2 | self-BLEU | entropy |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in summary:
        beta = "-" if row["beta"] is None else f"{row['beta']:g}"
        lines.append(f"| {row['method']} | {beta} | {row['n_seeds']} | {cell(row, 'reward', 3)} | "
                     f"{cell(row, 'proxy_reward', 3)} | {cell(row, 'kl', 2)} | {cell(row, 'distinct_1', 3)} | "
                     f"{cell(row, 'distinct_2', 3)} | {cell(row, 'self_bleu', 1)} | {cell(row, 'entropy', 2)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one seed, small budgets (smoke run)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default 0 1 2)")
    parser.add_argument("--methods", nargs="+", default=None, choices=frontier.METHODS, help="default: all")
    parser.add_argument("--name", default=None, help="output file name (default sentiment_frontier[_quick])")
    parser.add_argument("--merge", nargs="+", default=None, metavar="JSON", help="merge the rows of earlier runs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    name = args.name or ("sentiment_frontier_quick" if args.quick else "sentiment_frontier")
    OUT.mkdir(parents=True, exist_ok=True)
    if args.merge:
        runs = [json.loads(Path(path).read_text()) for path in args.merge]
        rows, seconds, config = [r for run in runs for r in run["rows"]], sum(r["seconds"] for r in runs), None
    else:
        config = frontier.Config()
        if args.quick:
            config = config.replace(seeds=(0,), pretrain_steps=300, sft_steps=100, n_train_prompts=64,
                                    n_eval_prompts=32, dpo_betas=(0.1, 1.0), ppo_betas=(0.1,), ppo_steps=10,
                                    reward_epochs=3, variant_betas=(0.1,), orpo_lambdas=(0.1,), kto_betas=(0.1,),
                                    rl_betas=(0.1,), online_dpo_betas=(0.1,))
        if args.seeds is not None:
            config = config.replace(seeds=tuple(args.seeds))
        if args.methods is not None:
            config = config.replace(methods=tuple(args.methods))
        start = time.perf_counter()
        rows = frontier.run(config, extra_metrics=diversity).rows
        seconds = time.perf_counter() - start
    summary = frontier.summarize(rows)
    (OUT / f"{name}.json").write_text(json.dumps({"config": config and config.to_dict(), "seconds": seconds,
                                                  "rows": rows, "summary": summary}, indent=1))
    frontier.plot(rows, OUT / f"{name}.png")
    print(f"\n{len({r['seed'] for r in rows})} seed(s), {seconds / 60:.1f} min of compute\n")
    print(table(summary))
    print(f"\nwrote {OUT / name}.json and .png")


if __name__ == "__main__":
    main()
