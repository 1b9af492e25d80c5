"""GRPO, RLOO and online DPO (irlhf.llm.grpo, rloo, online_dpo) against TRL 1.16's GRPOTrainer, RLOOTrainer and
OnlineDPOTrainer: wall-clock of the whole training call, CPU, on the models of dpo_vs_trl.py.

    python benchmarks/online_methods_vs_trl.py [--sizes tiny medium] [--methods grpo rloo online_dpo] [--repeats 3]
        [--steps N] [--threads N]                        # writes benchmarks/out/online_methods_vs_trl.json

Models and tokenizer from ``benchmarks/dpo_vs_trl.py``'s ``prepare`` (GPT-2 built from a config, dropout 0; "tiny":
4 layers x 128, "medium": 8 layers x 512; byte-level BPE, vocabulary 4096); prompts: its generated pair rows'
prompts (tiny 6-14 words, medium 20-60). Per step both sample ``batch`` prompts x G completions with
``model.generate`` (temperature 1, top_k 0, top_p 1, up to ``max_new_tokens``), score them with the same reward
(lowercase letters per completion character), compute reference log-probs (beta > 0: GRPO 0.04, RLOO 0.05, the
reference a copy of the initial policy: TRL loads it from the model's path inside the timed call, ours copies it)
and take one optimiser step (num_iterations 1). Same G, steps, prompts per step, max_new_tokens, temperature,
learning rate, seed. Online DPO: G = 2 (its pair), beta 0.1, temperature 1 on both sides (TRL's default 0.9).

TRL runs with its defaults except what must match and: use_cpu, bf16=False (TRL's default bf16=True autocasts the
CPU forward to bf16; ours computes in fp32), gradient_checkpointing=False (TRL's default recomputes activations in
the backward pass, a memory-for-time trade ours does not make), report_to="none", save_strategy="no",
disable_tqdm, shuffle_dataset as default. Loss settings differ where the defaults differ (TRL GRPO: loss_type
"dapo", use_bias_correction_kl; ours: "grpo", no correction); their cost is the same elementwise work.
Time: the whole training call (tokenisation, generation, reference, update), model loading excluded, summed over
--repeats (repeat r seeded SEED + r on both sides), ours and TRL interleaved, after one untimed one-step run of
each (lazy imports, first-call setup). Sampling decides how long each completion is, and the two libraries draw
different samples from the same seed: the mean sampled tokens per completion (EOS included) of each side are
reported beside the times (ours from the run's history, TRL's from the completion ids its reward function gets).
Torch threads: --threads (default: torch's own default here).
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

DEFAULT_THREADS = torch.get_num_threads()  # torch's default, read before importing dpo_vs_trl (it may set one)

from benchmarks.dpo_vs_trl import SEED, load_model, prepare  # noqa: E402

# per size: prompts per step, samples per prompt, sampled tokens per completion, steps
ONLINE = {"tiny": dict(batch=4, generations=4, max_new_tokens=24, steps=8),
          "medium": dict(batch=2, generations=4, max_new_tokens=64, steps=4)}
BETAS = {"grpo": 0.04, "rloo": 0.05, "online_dpo": 0.1}
LR = 1e-6
LETTERS = frozenset("abcdefghijklmnopqrstuvwxyz ")


def letters(completions: list[str]) -> list[float]:
    return [sum(ch in LETTERS for ch in c) / max(len(c), 1) for c in completions]


def completion_tokens(ids: list[int], eos_id: int) -> int:
    """Sampled tokens of one completion: up to and including its first EOS (TRL's online DPO pads after it)."""
    return ids.index(eos_id) + 1 if eos_id in ids else len(ids)


def our_reward(prompts, completions):
    return letters(completions)


def counting_trl_reward(eos_id: int, counts: dict):
    """TRL's reward function: the letters reward, adding the completions' sampled tokens to ``counts``."""
    def reward(prompts, completions, completion_ids, **kwargs):
        counts["completions"] += len(completions)
        counts["tokens"] += sum(completion_tokens(list(ids), eos_id) for ids in completion_ids)
        return letters(completions)
    return reward


def generations(method: str, spec: dict) -> int:
    return 2 if method == "online_dpo" else spec["generations"]


def run_ours(method: str, model_dir: Path, prompts: list[str], spec: dict, seed: int, counts: dict) -> float:
    from transformers import AutoTokenizer
    from irlhf.llm import grpo, online_dpo, rloo

    tokenizer, model = AutoTokenizer.from_pretrained(model_dir), load_model(model_dir)
    module = {"grpo": grpo, "rloo": rloo, "online_dpo": online_dpo}[method]
    config = module.Config(steps=spec["steps"], batch_size=spec["batch"], num_generations=generations(method, spec),
                           max_new_tokens=spec["max_new_tokens"], temperature=1.0, beta=BETAS[method],
                           learning_rate=LR, seed=seed, progress=False, device="cpu")
    start = time.perf_counter()
    result = module.train(model, tokenizer, prompts, our_reward, config)
    seconds = time.perf_counter() - start
    lengths = [row["completion_length"] for row in result.history if "completion_length" in row]  # one per step
    counts["completions"] += len(lengths) * spec["batch"] * generations(method, spec)
    counts["tokens"] += sum(lengths) * spec["batch"] * generations(method, spec)
    return seconds


def run_trl(method: str, model_dir: Path, prompts: list[str], spec: dict, seed: int, counts: dict) -> float:
    from datasets import Dataset
    from transformers import AutoTokenizer

    tokenizer, model = AutoTokenizer.from_pretrained(model_dir), load_model(model_dir)
    trl_reward = counting_trl_reward(tokenizer.eos_token_id, counts)
    with tempfile.TemporaryDirectory() as out:
        common = dict(output_dir=out, temperature=1.0, beta=BETAS[method], learning_rate=LR, max_steps=spec["steps"],
                      seed=seed, use_cpu=True, bf16=False, gradient_checkpointing=False, report_to="none",
                      save_strategy="no", disable_tqdm=True)
        if method == "online_dpo":
            from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer
            args = OnlineDPOConfig(**common, per_device_train_batch_size=spec["batch"],
                                   max_new_tokens=spec["max_new_tokens"])
            start = time.perf_counter()
            trainer = OnlineDPOTrainer(model=model, reward_funcs=trl_reward, args=args,
                                       train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
                                       processing_class=tokenizer)
            trainer.train()
            return time.perf_counter() - start
        common.update(num_generations=spec["generations"], max_completion_length=spec["max_new_tokens"],
                      per_device_train_batch_size=spec["batch"] * spec["generations"])
        if method == "grpo":
            from trl import GRPOConfig as ConfigClass, GRPOTrainer as TrainerClass
        else:
            from trl import RLOOConfig as ConfigClass, RLOOTrainer as TrainerClass
        start = time.perf_counter()
        trainer = TrainerClass(model=model, reward_funcs=trl_reward, args=ConfigClass(**common),
                               train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
                               processing_class=tokenizer)
        trainer.train()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "medium"], choices=list(ONLINE))
    parser.add_argument("--methods", nargs="+", default=["grpo", "rloo", "online_dpo"],
                        choices=["grpo", "rloo", "online_dpo"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None, help="steps per run (default: per size, see ONLINE)")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help=f"torch threads (default: torch's default here, {DEFAULT_THREADS})")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "online_methods_vs_trl.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import transformers
    transformers.logging.set_verbosity_error()
    results = {"torch_threads": torch.get_num_threads(), "load_before": os.getloadavg(), "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            spec = dict(ONLINE[size], **({"steps": args.steps} if args.steps else {}))
            model_dir, rows = prepare(size, Path(tmp))
            prompts = [row["prompt"] for row in rows][:spec["steps"] * spec["batch"]]
            for method in args.methods:
                times = {"ours": [], "trl": []}
                counts = {side: {"completions": 0, "tokens": 0} for side in times}
                warm = {"completions": 0, "tokens": 0}
                run_ours(method, model_dir, prompts, dict(spec, steps=1), SEED, warm)  # warm-up (lazy imports, ...)
                run_trl(method, model_dir, prompts, dict(spec, steps=1), SEED, warm)
                for repeat in range(args.repeats):  # interleaved, so a change of load hits both; same seeds
                    times["ours"].append(run_ours(method, model_dir, prompts, spec, SEED + repeat, counts["ours"]))
                    times["trl"].append(run_trl(method, model_dir, prompts, spec, SEED + repeat, counts["trl"]))
                row = {"size": size, "method": method, **spec, "generations": generations(method, spec),
                       "completions": spec["steps"] * spec["batch"] * generations(method, spec), "seconds": times,
                       "mean_completion_tokens": {side: c["tokens"] / c["completions"] for side, c in counts.items()},
                       "speedup": sum(times["trl"]) / sum(times["ours"])}
                results["rows"].append(row)
                print(f"[{size} {method}] {json.dumps(row)}", file=sys.stderr)
    results["load_after"] = os.getloadavg()
    print(f"load before {results['load_before']}, after {results['load_after']}; "
          f"torch threads {results['torch_threads']}")
    print("| size | method | steps x prompts x G | max new tokens | ours s (mean) | TRL s (mean) | "
          "tokens/completion ours / TRL | speedup |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results["rows"]:
        o, t = (sum(r["seconds"][side]) / len(r["seconds"][side]) for side in ("ours", "trl"))
        length = r["mean_completion_tokens"]
        print(f"| {r['size']} | {r['method']} | {r['steps']} x {r['batch']} x {r['generations']} | "
              f"{r['max_new_tokens']} | {o:.2f} | {t:.2f} | {length['ours']:.1f} / {length['trl']:.1f} | "
              f"{r['speedup']:.2f}x |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
