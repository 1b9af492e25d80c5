"""Speed and memory of inverse RL for language models against SFT: irlhf.llm.iq_learn (offline and online) and
irlhf.llm.seq_maxent, CPU, one thread (issue 20: an offline IQ-Learn step should cost at most 1.5x an SFT step).

    python benchmarks/llm_irl_speed.py --size tiny      # GPT-2 4 layers x 128, T <= 64, batch 16
    python benchmarks/llm_irl_speed.py --size medium    # GPT-2 8 layers x 512, T <= 256, batch 4

Prints a markdown table and merges this size into benchmarks/out/llm_irl_speed.json.

Setup (``benchmarks/dpo_vs_trl.py``'s helpers, imported): a byte-level BPE tokenizer (vocab 4096, no BOS) trained
here on generated text, a randomly initialised GPT-2 from a config (dropout 0; n_positions = the size's T), and
generated {prompt, completion} demonstrations (one token per word; their lengths fill T, longest ~T). Nothing is
downloaded. One torch thread (``torch.set_num_threads(1)``, OMP_NUM_THREADS=1 in the memory processes).

(1) Per-step cost on the SAME batch: one collated batch (``irlhf.llm.tokenize.collate``, right-padded to its
    longest row) and, per method, a fresh model and AdamW (``irlhf.llm.loop.adamw``), one warm-up step, then
    the mean of ``steps`` timed steps (tiny 5, medium 1); median over --repeats (SFT and IQ-Learn interleaved in each repeat). A
    step is loss + backward + gradient clipping at 1.0 (as both ``train`` functions do) + AdamW step + zero_grad.
    SFT's loss: ``irlhf.llm.sft.token_losses`` summed over the scored tokens / their count. IQ-Learn's loss:
    ``irlhf.llm.iq_learn._batch_loss`` (the function ``train`` calls on a collated batch; private, so this
    benchmark follows it if it moves), with the default Config (chi^2, alpha 1, gamma 1, no extra MLE term) and
    the global counts of this batch. Ratio = IQ ms/step / SFT ms/step.
(2) Samples/s: demonstrations / wall time of the whole ``train`` call (tokenisation, optimiser set-up and for
    seq_maxent the copy of pi_ref and the reward model's construction included; model loading excluded), with
    ``max_steps`` / ``steps`` = ``train_steps`` (tiny 4, medium 1) on the same demonstrations, median over --repeats:
    SFT (``sft.train``), IQ-Learn offline and online (``iq_learn.train``, online: one batched ``generate`` of a
    completion per prompt each step, max_new_tokens 32) and sequence MaxEnt IRL (``seq_maxent.train``,
    k_samples 4, max_new_tokens 32: each step samples K completions per prompt in one generate, scores them with
    pi_ref and R_phi, one reward step and one RLOO policy step). The models are untrained, so samples rarely end
    in EOS: completions run to max_new_tokens (the slow case). Ratio = SFT samples/s / method samples/s (the
    time per demonstration relative to SFT's).
(3) Peak memory: a fresh subprocess per method imports the libraries, resets its peak RSS (Linux
    /proc/self/clear_refs "5"), loads model and tokenizer and runs that method's ``train`` for one step on one
    batch; "peak MiB" = RSS high-water (VmHWM) minus the RSS just before (allocator slack and caches included;
    tracemalloc does not see torch's allocator). ``ru_maxrss`` of the whole process is stored too.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make ``benchmarks.dpo_vs_trl`` importable
    sys.path.insert(0, str(ROOT))
import benchmarks.dpo_vs_trl as b  # noqa: E402  (also sets one torch thread and quiet tokenizers)

# model dimensions and T come from b.SIZES[size]; "words": demonstration lengths (prompt lo, hi, completion lo, hi)
SIZES = {
    "tiny": dict(batch=16, demos=16, steps=5, train_steps=4, words=(8, 24, 8, 38)),
    "medium": dict(batch=4, demos=4, steps=1, train_steps=1, words=(40, 100, 60, 150)),
}
METHODS = ("sft", "iq_offline", "iq_online", "seq_maxent")
LR, SEED, K, MAX_NEW = 1e-5, 0, 4, 32


def demonstrations(size: str) -> list[dict[str, str]]:
    spec = SIZES[size]
    n = max(spec["demos"], spec["batch"] * spec["train_steps"])
    return [{"prompt": r["prompt"], "completion": r["chosen"]} for r in b.make_texts(n, spec["words"], seed=SEED)]


def build(size: str, model_dir: Path) -> None:
    tokenizer = b.make_tokenizer(model_dir)
    b.make_model(size, len(tokenizer), model_dir)


def load(model_dir: Path):
    import transformers
    from transformers import AutoTokenizer
    transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar per model
    return AutoTokenizer.from_pretrained(model_dir), b.load_model(model_dir)


# -- (1) one step on the same batch ------------------------------------------------------------------------
def same_batch(tokenizer, rows: list[dict[str, str]], size: str) -> dict[str, torch.Tensor]:
    from irlhf.llm import iq_learn
    from irlhf.llm.tokenize import collate, encode, pad_id_of

    options = iq_learn.Config(max_length=b.SIZES[size]["max_length"]).tokenize_options()
    items = [encode(tokenizer, r["prompt"], r["completion"], options) for r in rows[:SIZES[size]["batch"]]]
    assert all(e is not None and e.input_ids[-1] == tokenizer.eos_token_id for e in items), "demos must fit T"
    return collate(items, pad_id_of(tokenizer))


def step_fn(method: str, model, batch: dict[str, torch.Tensor], eos_id: int):
    from irlhf.llm import iq_learn, sft
    from irlhf.llm.loop import adamw

    model.train()
    opt = adamw(model, LR)
    scored = batch["completion_mask"].bool().clone()
    scored[:, 0] = False
    n_tok, n_rows = int(scored.sum()), batch["input_ids"].shape[0]
    config = iq_learn.Config(max_length=batch["input_ids"].shape[1], progress=False, device="cpu")

    def step() -> None:
        if method == "sft":
            nll, _, _ = sft.token_losses(model, batch)
            loss = nll.sum() / n_tok
        else:
            loss, _ = iq_learn._batch_loss(model, batch, n_rows, config, eos_id, (n_tok, n_tok, 0, n_rows))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def step_times(model_dir: Path, rows: list[dict[str, str]], size: str, repeats: int) -> dict[str, list[float]]:
    tokenizer, _ = load(model_dir)
    batch = same_batch(tokenizer, rows, size)
    times: dict[str, list[float]] = {"sft": [], "iq_offline": []}
    for _ in range(repeats):
        for method in times:
            step = step_fn(method, b.load_model(model_dir), batch, tokenizer.eos_token_id)
            step()  # warm-up
            start = time.perf_counter()
            for _ in range(SIZES[size]["steps"]):
                step()
            times[method].append((time.perf_counter() - start) / SIZES[size]["steps"])
    return times


# -- (2) whole train calls ----------------------------------------------------------------------------------
def run_train(method: str, model_dir: Path, rows: list[dict[str, str]], size: str, steps: int) -> float:
    """Seconds of one ``train`` call of ``steps`` steps (model loading excluded)."""
    from irlhf.llm import iq_learn, seq_maxent, sft

    tokenizer, model = load(model_dir)
    spec, t = SIZES[size], b.SIZES[size]["max_length"]
    common = dict(batch_size=spec["batch"], max_length=t, seed=SEED, progress=False, device="cpu")
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. seq_maxent's ESS-collapse warning on an untrained model
        if method == "sft":
            sft.train(model, tokenizer, rows, sft.Config(learning_rate=LR, max_steps=steps, **common))
        elif method in ("iq_offline", "iq_online"):
            iq_learn.train(model, tokenizer, rows, iq_learn.Config(
                learning_rate=LR, max_steps=steps, online=method == "iq_online", max_new_tokens=MAX_NEW, **common))
        else:
            seq_maxent.train(model, tokenizer, rows, seq_maxent.Config(
                steps=steps, k_samples=K, max_new_tokens=MAX_NEW, reward_learning_rate=LR, policy_learning_rate=LR,
                **common))
    return time.perf_counter() - start


# -- (3) peak memory, a fresh process per method -------------------------------------------------------------
def memory_child(method: str, size: str, model_dir: str) -> None:
    rows = demonstrations(size)[:SIZES[size]["batch"]]
    # everything the run imports is loaded outside the measured window
    from transformers import AutoTokenizer, GenerationConfig, GPT2ForSequenceClassification, GPT2LMHeadModel
    from irlhf.llm import iq_learn, seq_maxent, sft
    loaded = [AutoTokenizer, GenerationConfig, GPT2ForSequenceClassification, GPT2LMHeadModel, iq_learn, seq_maxent,
              sft]
    del loaded
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS (VmHWM) to the current RSS
    before = b._status_kib("VmRSS")
    run_train(method, Path(model_dir), rows, size, steps=1)
    peak = b._status_kib("VmHWM")
    print(json.dumps({"before_kib": before, "peak_kib": peak,
                      "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def measure_memory(method: str, size: str, model_dir: Path) -> dict[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    code = f"import benchmarks.llm_irl_speed as m; m.memory_child({method!r}, {size!r}, {str(model_dir)!r})"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600,
                          cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    values = json.loads(done.stdout.strip().splitlines()[-1])
    return {"peak_mib": (values["peak_kib"] - values["before_kib"]) / 1024, "before_mib": values["before_kib"] / 1024,
            "process_maxrss_mib": values["maxrss_kib"] / 1024}


def machine() -> dict[str, object]:
    models = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
              if line.startswith("model name")]
    return {"cpu": models[0] if models else "unknown", "cores": os.cpu_count(), "torch": torch.__version__,
            "transformers": importlib.metadata.version("transformers"), "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=list(SIZES), default="tiny")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import transformers
    transformers.logging.set_verbosity_error()

    spec = SIZES[args.size]
    rows = demonstrations(args.size)
    load_start = os.getloadavg()
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / args.size
        build(args.size, model_dir)
        tokenizer, model = load(model_dir)  # first: it turns off the loading bar
        batch = same_batch(tokenizer, rows, args.size)
        n_params = sum(p.numel() for p in model.parameters())
        del model
        steps = step_times(model_dir, rows, args.size, args.repeats)
        train_s = {m: [] for m in METHODS}
        for _ in range(args.repeats):
            for method in METHODS:
                train_s[method].append(run_train(method, model_dir, rows, args.size, spec["train_steps"]))
        memory = {} if args.no_memory else {m: measure_memory(m, args.size, model_dir) for m in METHODS}
    n_demos = spec["batch"] * spec["train_steps"]
    ms = {m: 1000 * statistics.median(v) for m, v in steps.items()}
    sps = {m: n_demos / statistics.median(v) for m, v in train_s.items()}
    result = {"size": args.size, "model": {k: v for k, v in b.SIZES[args.size].items() if k in ("n_layer", "n_embd",
                                                                                                "n_head")},
              "parameters": n_params, "vocab_size": len(tokenizer), "T": b.SIZES[args.size]["max_length"],
              "batch_shape": list(batch["input_ids"].shape),
              "scored_tokens": int(batch["completion_mask"][:, 1:].sum()), **{k: v for k, v in spec.items()
                                                                             if k != "words"},
              "k_samples": K, "max_new_tokens": MAX_NEW, "repeats": args.repeats, "machine": machine(),
              "load_average_start": load_start, "load_average_end": os.getloadavg(),
              "wall_seconds": time.perf_counter() - wall,
              "step_seconds": steps, "ms_per_step": ms, "iq_over_sft_step": ms["iq_offline"] / ms["sft"],
              "train_seconds": train_s, "samples_per_s": sps,
              "time_per_demo_over_sft": {m: sps["sft"] / v for m, v in sps.items()}, "memory": memory}

    mach = result["machine"]
    print(f"{mach['cpu']}, {mach['cores']} cores; torch {mach['torch']}, {mach['threads']} thread; load average "
          f"{' '.join(f'{x:.2f}' for x in load_start)} (start) / "
          f"{' '.join(f'{x:.2f}' for x in result['load_average_end'])} (end); "
          f"{args.size}: {result['model']}, T={result['T']}, batch {result['batch_shape']}, "
          f"{result['wall_seconds']:.0f} s\n")
    mem = {m: f"{memory[m]['peak_mib']:.0f}" if m in memory else "-" for m in METHODS}
    print("| method | size | ms/step or samples/s | ratio to SFT | peak MiB |")
    print("|---|---|---|---|---|")
    print(f"| SFT step (same batch) | {args.size} | {ms['sft']:.1f} ms/step | 1.00 | - |")
    print(f"| IQ-Learn offline step (same batch) | {args.size} | {ms['iq_offline']:.1f} ms/step "
          f"| {result['iq_over_sft_step']:.2f} | - |")
    names = {"sft": "SFT train", "iq_offline": "IQ-Learn offline train", "iq_online": "IQ-Learn online train",
             "seq_maxent": f"seq MaxEnt IRL train (K={K})"}
    for m in METHODS:
        print(f"| {names[m]} | {args.size} | {sps[m]:.3g} samples/s | {result['time_per_demo_over_sft'][m]:.2f} "
              f"| {mem[m]} |")
    path = ROOT / "benchmarks" / "out" / "llm_irl_speed.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(path.read_text()) if path.exists() else {}
    previous[args.size] = result
    path.write_text(json.dumps(previous, indent=2) + "\n")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
