"""Imitating a language-model expert: SFT, IQ-Learn (offline, online), sequence MaxEnt IRL + RLOO, BT RM + PPO and
DPO on the same demonstrations, scored by a true reward the learners never see (``irlhf.eval.llm_imitation``);
each method along the knob of ``llm_imitation.CURVES`` (3 settings), so each traces a score-diversity curve.

    python benchmarks/irl_for_llms.py --task sentiment          # 3 seeds; one torch thread
    python benchmarks/irl_for_llms.py --task addition
    python benchmarks/irl_for_llms.py --table                   # the table and plot from the saved rows

Rows go to benchmarks/out/irl_for_llms_<task>.jsonl as each seed finishes (a rerun skips finished seeds); the
table (mean and 95% t-interval over seeds) is printed as markdown and the plot written to
docs/img/irl_for_llms.png (task score against distinct-2) and docs/img/irl_for_llms_selfbleu.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from irlhf.eval import llm_imitation  # noqa: E402  (after the path set-up)

OUT = ROOT / "benchmarks" / "out"
COLUMNS = (("score", "score", 3), ("kl", "KL to pi_SFT", 2), ("distinct_1", "distinct-1", 3),
           ("distinct_2", "distinct-2", 3), ("self_bleu", "self-BLEU", 1), ("entropy", "entropy", 2),
           ("correct_forms", "forms among correct", 1), ("reward_spearman", "Spearman(reward, true)", 2),
           ("seconds", "train s", 0))


def rows_path(task: str) -> Path:
    return OUT / f"irl_for_llms_{task}.jsonl"


def load_rows(task: str) -> list[dict]:
    path = rows_path(task)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def run(task: str, seeds: tuple[int, ...], overrides: dict) -> None:
    done = {row["seed"] for row in load_rows(task)}
    OUT.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        if seed in done:
            print(f"{task} seed {seed}: already in {rows_path(task).name}, skipped")
            continue
        config = llm_imitation.Config(task=task, seeds=(seed,), **overrides)
        start = time.perf_counter()
        rows = llm_imitation.run_seed(config, seed)
        with open(rows_path(task), "a", encoding="utf-8") as f:
            f.write("".join(json.dumps(row) + "\n" for row in rows))
        print(f"{task} seed {seed}: {time.perf_counter() - start:.0f} s, load {os.getloadavg()[0]:.2f}", flush=True)


def table(rows: list[dict]) -> str:
    summary = llm_imitation.summarize(rows)
    lines = ["| task | method | setting | seeds | " + " | ".join(name for _, name, _ in COLUMNS) + " |",
             "|" + "---|" * (4 + len(COLUMNS))]
    for s in summary:
        cells = []
        for key, _, digits in COLUMNS:
            if key not in s:
                cells.append("-")
            else:
                ci = s[key + "_ci"]
                cells.append(f"{s[key]:.{digits}f}" + ("" if ci != ci else f" ± {ci:.{digits}f}"))
        lines.append(f"| {s['task']} | {s['method']} | {s['setting'] or ''} | {s['n_seeds']} | " + " | ".join(cells)
                     + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=("sentiment", "addition"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="a Config field")
    parser.add_argument("--table", action="store_true", help="print the table and draw the plots from saved rows")
    args = parser.parse_args()
    torch.set_num_threads(1)
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"1 thread, load {os.getloadavg()[0]:.2f}")
    if args.task:
        run(args.task, tuple(args.seeds), overrides)
    if args.table or not args.task:
        rows = load_rows("sentiment") + load_rows("addition")
        print(table(rows))
        llm_imitation.plot(rows, ROOT / "docs" / "img" / "irl_for_llms.png")
        llm_imitation.plot(rows, ROOT / "docs" / "img" / "irl_for_llms_selfbleu.png", diversity="self_bleu")


if __name__ == "__main__":
    main()
