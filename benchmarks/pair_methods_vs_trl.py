"""SimPO and ORPO (irlhf.llm.simpo, irlhf.llm.orpo) against TRL 1.16's CPOTrainer(loss_type="simpo") and
ORPOTrainer: wall-clock of the whole training call, one CPU thread, on the models and data of dpo_vs_trl.py.

    python benchmarks/pair_methods_vs_trl.py [--sizes tiny medium] [--repeats 3]   # writes benchmarks/out/...json

Models, tokenizer and generated data as in ``benchmarks/dpo_vs_trl.py`` ("tiny": 4 layers x 128, 256 pairs, batch
32, max length 64; "medium": 8 layers x 512, 64 pairs, batch 8, max length 256). TRL runs with its defaults except
what must match (beta / simpo_gamma / lambda, learning_rate, per_device_train_batch_size, max_length, one epoch,
seed, use_cpu, bf16=False, report_to="none", save_strategy="no", disable_tqdm); ours with add_bos=True (TRL's CPO
and ORPO put BOS before every prompt, so both score the same sequences; step-0 equality is tests/llm/test_vs_trl.py).
Time: the whole training call, tokenisation included, model loading excluded, best of --repeats. Neither method has
a reference model, so the difference is the loop: TRL pads chosen and rejected rows to one width and runs the LM
head over every position; ours pads in length groups, one forward call, LM head at completion positions only
(ORPO: also the chosen rows' prompt positions, for its NLL).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import torch  # noqa: E402

from benchmarks.dpo_vs_trl import LR, SEED, SIZES, load_model, prepare  # noqa: E402

torch.set_num_threads(1)
SIMPO_BETA, SIMPO_GAMMA, ORPO_LAMBDA = 2.0, 0.5, 0.1


def run_ours(method: str, model_dir: Path, rows: list[dict[str, str]], size: str) -> float:
    from transformers import AutoTokenizer
    from irlhf.data.text import TextPairs
    from irlhf.llm import orpo, simpo

    spec = SIZES[size]
    tokenizer, model = AutoTokenizer.from_pretrained(model_dir), load_model(model_dir)
    common = dict(learning_rate=LR, batch_size=spec["batch"], max_length=spec["max_length"], epochs=1, seed=SEED,
                  progress=False, device="cpu", add_bos=True)
    module, config = ((simpo, simpo.Config(beta=SIMPO_BETA, gamma=SIMPO_GAMMA, **common)) if method == "simpo"
                      else (orpo, orpo.Config(lam=ORPO_LAMBDA, **common)))
    start = time.perf_counter()
    module.train(model, tokenizer, TextPairs.from_rows(rows), config)
    return time.perf_counter() - start


def run_trl(method: str, model_dir: Path, rows: list[dict[str, str]], size: str) -> float:
    from datasets import Dataset
    from transformers import AutoTokenizer

    spec = SIZES[size]
    tokenizer, model = AutoTokenizer.from_pretrained(model_dir), load_model(model_dir)
    with tempfile.TemporaryDirectory() as out:
        common = dict(output_dir=out, learning_rate=LR, per_device_train_batch_size=spec["batch"],
                      max_length=spec["max_length"], num_train_epochs=1, seed=SEED, use_cpu=True, bf16=False,
                      report_to="none", save_strategy="no", disable_tqdm=True)
        if method == "simpo":
            from trl.experimental.cpo import CPOConfig, CPOTrainer
            args, trainer_class = CPOConfig(loss_type="simpo", cpo_alpha=0.0, beta=SIMPO_BETA,
                                            simpo_gamma=SIMPO_GAMMA, **common), CPOTrainer
        else:
            from trl.experimental.orpo import ORPOConfig, ORPOTrainer
            args, trainer_class = ORPOConfig(beta=ORPO_LAMBDA, **common), ORPOTrainer
        start = time.perf_counter()
        trainer = trainer_class(model=model, args=args, train_dataset=Dataset.from_list(rows),
                                processing_class=tokenizer)
        trainer.train()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "medium"], choices=list(SIZES))
    parser.add_argument("--methods", nargs="+", default=["simpo", "orpo"], choices=["simpo", "orpo"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import transformers
    transformers.logging.set_verbosity_error()
    results = {"torch_threads": torch.get_num_threads(), "load_before": os.getloadavg(), "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            spec = SIZES[size]
            model_dir, rows = prepare(size, Path(tmp))
            for method in args.methods:
                times = {"ours": [], "trl": []}
                for _ in range(args.repeats):  # interleaved, so a change of load hits both
                    times["ours"].append(run_ours(method, model_dir, rows, size))
                    times["trl"].append(run_trl(method, model_dir, rows, size))
                row = {"size": size, "method": method, "pairs": spec["pairs"], "seconds": times,
                       "speedup": min(times["trl"]) / min(times["ours"])}
                results["rows"].append(row)
                print(f"[{size} {method}] {json.dumps(row)}", file=sys.stderr)
    results["load_after"] = os.getloadavg()
    print(f"load before {results['load_before']}, after {results['load_after']}; torch threads 1")
    print("| size | method | ours s (best) | TRL s (best) | ours pairs/s | TRL pairs/s | speedup |")
    print("|---|---|---|---|---|---|---|")
    for r in results["rows"]:
        o, t = min(r["seconds"]["ours"]), min(r["seconds"]["trl"])
        print(f"| {r['size']} | {r['method']} | {o:.2f} | {t:.2f} | {r['pairs'] / o:.1f} | {r['pairs'] / t:.1f} "
              f"| {r['speedup']:.2f}x |")
    out = ROOT / "benchmarks" / "out" / "pair_methods_vs_trl.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
