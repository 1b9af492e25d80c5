"""SimPO, ORPO and KTO (irlhf.llm.simpo, .orpo, .kto) against TRL 1.16's CPOTrainer(loss_type="simpo"), ORPOTrainer
and KTOTrainer: wall-clock of the whole training call, on the models and data of dpo_vs_trl.py.

    python benchmarks/pair_methods_vs_trl.py [--sizes tiny medium] [--methods simpo orpo kto] [--repeats 3]
                                             [--threads N]          # writes benchmarks/out/pair_methods_vs_trl.json

Models, tokenizer and generated data as in ``benchmarks/dpo_vs_trl.py`` ("tiny": 4 layers x 128, 256 pairs, batch
32, max length 64; "medium": 8 layers x 512, 64 pairs, batch 8, max length 256). KTO trains on the same pairs
unpaired (TextLabels.from_pairs: 2 rows per pair, chosen desirable, rejected undesirable), and both sides get those
unpaired rows, batch = the size's batch in ROWS. TRL runs with its defaults except what must match (beta /
simpo_gamma / lambda, learning_rate, per_device_train_batch_size, max_length, one epoch, seed, use_cpu, bf16=False,
report_to="none", save_strategy="no", disable_tqdm); ours with add_bos=True for SimPO and ORPO (TRL's CPO and ORPO
put BOS before every prompt, so both score the same sequences; step-0 equality is tests/llm/test_vs_trl.py) and the
default add_bos="auto" for KTO (TRL's KTO adds BOS only as the tokenizer does; tests/llm/test_kto_vs_trl.py).
Defaults that remain different: TRL's gradient_checkpointing=True (it recomputes the forward in the backward pass)
and its linear learning-rate decay; for KTO, TRL loads a second copy of the model as its reference and runs it
on every step's rows and mismatched rows (precompute_ref_log_probs=False), where ours scores the reference once
before training (both sets of rows: the batch order is fixed by the seed).
Time: the whole training call, tokenisation included, model loading excluded, best of --repeats. Torch threads:
--threads (default: torch's own default, one per core; --threads 1 gives the one-thread timings recorded before).
The loops differ: TRL pads a step's rows to one width and (SimPO/ORPO) runs the LM head over every position; ours
pads in length groups, one forward call, LM head at completion positions only (ORPO: also the chosen rows' prompt
positions, for its NLL; KTO: the mismatched rows in the same call, without gradients).
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

DEFAULT_THREADS = torch.get_num_threads()  # torch's default, read before dpo_vs_trl's import sets one thread

from benchmarks.dpo_vs_trl import LR, SEED, SIZES, load_model, prepare  # noqa: E402

SIMPO_BETA, SIMPO_GAMMA, ORPO_LAMBDA, KTO_BETA = 2.0, 0.5, 0.1, 0.1
METHODS = ("simpo", "orpo", "kto")


def unpaired(rows: list[dict[str, str]]) -> list[dict]:
    """The pair rows as KTO's labelled rows (TextLabels.from_pairs: chosen rows True, then rejected rows False)."""
    from irlhf.data.text import TextLabels, TextPairs
    return TextLabels.from_pairs(TextPairs.from_rows(rows)).to_rows()


def run_ours(method: str, model_dir: Path, rows: list[dict[str, str]], size: str) -> float:
    from transformers import AutoTokenizer
    from irlhf.data.text import TextLabels, TextPairs
    from irlhf.llm import kto, orpo, simpo

    spec = SIZES[size]
    tokenizer, model = AutoTokenizer.from_pretrained(model_dir), load_model(model_dir)
    common = dict(learning_rate=LR, batch_size=spec["batch"], max_length=spec["max_length"], epochs=1, seed=SEED,
                  progress=False, device="cpu")
    if method == "kto":  # rows: the unpaired rows (``unpaired``)
        start = time.perf_counter()
        kto.train(model, tokenizer, TextLabels.from_rows(rows), kto.Config(beta=KTO_BETA, **common))
        return time.perf_counter() - start
    module, config = ((simpo, simpo.Config(beta=SIMPO_BETA, gamma=SIMPO_GAMMA, add_bos=True, **common))
                      if method == "simpo" else (orpo, orpo.Config(lam=ORPO_LAMBDA, add_bos=True, **common)))
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
        elif method == "orpo":
            from trl.experimental.orpo import ORPOConfig, ORPOTrainer
            args, trainer_class = ORPOConfig(beta=ORPO_LAMBDA, **common), ORPOTrainer
        else:  # its own reference model is loaded from model_dir inside the timed call, as a user's would be
            from trl import KTOConfig, KTOTrainer
            args, trainer_class = KTOConfig(beta=KTO_BETA, **common), KTOTrainer
        start = time.perf_counter()
        trainer = trainer_class(model=model, args=args, train_dataset=Dataset.from_list(rows),
                                processing_class=tokenizer)
        trainer.train()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "medium"], choices=list(SIZES))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help=f"torch threads (default: torch's default here, {DEFAULT_THREADS}; 1: the old timings)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "pair_methods_vs_trl.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import transformers
    transformers.logging.set_verbosity_error()
    results = {"torch_threads": torch.get_num_threads(), "load_before": os.getloadavg(), "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            spec = SIZES[size]
            model_dir, pair_rows = prepare(size, Path(tmp))
            for method in args.methods:
                rows = unpaired(pair_rows) if method == "kto" else pair_rows
                times = {"ours": [], "trl": []}
                for _ in range(args.repeats):  # interleaved, so a change of load hits both
                    times["ours"].append(run_ours(method, model_dir, rows, size))
                    times["trl"].append(run_trl(method, model_dir, rows, size))
                row = {"size": size, "method": method, "pairs": spec["pairs"], "samples": len(rows),
                       "sample": "row" if method == "kto" else "pair", "seconds": times,
                       "speedup": min(times["trl"]) / min(times["ours"])}
                results["rows"].append(row)
                print(f"[{size} {method}] {json.dumps(row)}", file=sys.stderr)
    results["load_after"] = os.getloadavg()
    print(f"load before {results['load_before']}, after {results['load_after']}; "
          f"torch threads {results['torch_threads']}")
    print("| size | method | ours s (best) | TRL s (best) | ours samples/s | TRL samples/s | speedup |")
    print("|---|---|---|---|---|---|---|")
    for r in results["rows"]:
        o, t = min(r["seconds"]["ours"]), min(r["seconds"]["trl"])
        unit = f"{r['sample']}s/s"
        print(f"| {r['size']} | {r['method']} | {o:.2f} | {t:.2f} | {r['samples'] / o:.1f} {unit} "
              f"| {r['samples'] / t:.1f} {unit} | {r['speedup']:.2f}x |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
