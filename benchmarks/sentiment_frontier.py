"""The reward-KL frontier of DPO vs PPO on the synthetic sentiment task (``irlhf.llm.tasks.frontier``).

    python benchmarks/sentiment_frontier.py              # the RESULTS.md run: 3 seeds, defaults (about 5 min per seed here)
    python benchmarks/sentiment_frontier.py --quick      # one seed, smaller budgets: a smoke run, not a result

Writes benchmarks/out/sentiment_frontier.json (every run) and .png (reward vs KL, one point per run) and prints
a markdown table of the mean and std over seeds per method and beta. Torch uses one thread.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from irlhf.llm.tasks import frontier

OUT = Path(__file__).resolve().parent / "out"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one seed, small budgets (smoke run)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default 0 1 2)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = frontier.Config()
    if args.quick:
        config = config.replace(seeds=(0,), pretrain_steps=300, sft_steps=100, n_train_prompts=64, n_eval_prompts=32,
                                dpo_betas=(0.1, 1.0), ppo_betas=(0.1,), ppo_steps=10, reward_epochs=3)
    if args.seeds is not None:
        config = config.replace(seeds=tuple(args.seeds))
    start = time.perf_counter()
    result = frontier.run(config)
    seconds = time.perf_counter() - start
    OUT.mkdir(parents=True, exist_ok=True)
    name = "sentiment_frontier_quick" if args.quick else "sentiment_frontier"
    summary = frontier.summarize(result.rows)
    (OUT / f"{name}.json").write_text(json.dumps({"config": config.to_dict(), "seconds": seconds,
                                                  "rows": result.rows, "summary": summary}, indent=1))
    frontier.plot(result.rows, OUT / f"{name}.png")
    print(f"\n{len(config.seeds)} seed(s), {seconds / 60:.1f} min\n")
    print("| method | beta | mean reward | std | mean KL (nats) | std |")
    print("|---|---|---|---|---|---|")
    for row in summary:
        print(f"| {row['method']} | {row['beta'] if row['beta'] is not None else '-'} | {row['reward']:+.3f} | "
              f"{row['reward_std']:.3f} | {row['kl']:.2f} | {row['kl_std']:.2f} |")
    print(f"\nwrote {OUT / name}.json and .png")


if __name__ == "__main__":
    main()
