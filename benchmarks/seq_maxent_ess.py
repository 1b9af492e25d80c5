"""Importance-weight collapse in sequence MaxEnt IRL: the demonstration's proposal density, "policy" vs "fused".

    .venv/bin/python benchmarks/seq_maxent_ess.py

Prints a markdown table and writes benchmarks/out/seq_maxent_ess.json (rows, every run's logged history, the
first step's log q statistics). CPU, one torch thread; about 6-8 minutes on 2 cores.

What it measures. ``irlhf.llm.seq_maxent`` estimates log Z(R, x) by importance sampling over K samples of the
policy q plus the demonstration y_E. ``Config.demo_proposal`` sets the demonstration's proposal density:
"policy" weighs y_E by q(y_E|x) as if q had drawn it, so when q rarely writes y_E its weight exp R_E / q(y_E|x)
takes everything (ESS -> 1) and log Z_hat - R(x, y_E) ~ -log q(y_E|x) stops depending on R (the reward stops
learning); "fused" (GCL's q_bar = (K q + [y = y_E]) / (K + 1), the default) keeps the samples in play.

How. Per task in ("addition", "sentiment"), seed 0: the setup of ``irlhf.eval.llm_imitation`` (``addition_setup``
/ ``sentiment_setup`` with its Config defaults: a tiny pretrained / fine-tuned GPT-2, 512 demonstrations, held-out
pi_SFT samples with their true scores). Then for each demo_proposal, ``seq_maxent.train`` from a copy of the start
model with the settings of ``llm_imitation``'s MaxEnt row: 150 reward steps of 32 demonstrations, K = 4, a policy
step every 3, beta 0.05, the task's learning rates (``TASK_RATES``), max_length 64, seed 0, ref_model = the start
model; the collapse warning is caught and recorded. Per run:

- ESS frac first / last: mean ``ess_fraction`` (ESS / (K+1)) over the logged rows (every 10th step and step 1)
  with step <= 10, and with step > 100 (the last 50 steps);
- collapsed: share of logged rows with ``ess_collapsed`` > 0.5 (more than half the prompts at ESS <= 1.5);
- warned: the step at which seq_maxent's collapse warning fired (-: never);
- reward/loss first -> last logged row; gap: reward/demo - reward/samples at the last logged row;
- Spearman: of the learned reward (``reward.as_reward_fn``) with the true reward on ``setup.heldout``;
- score: the held-out true score of the final policy (``llm_imitation.evaluate``, seed 0), also its KL to pi_SFT;
- seconds: wall time of the ``train`` call.

First-step log q: the history has no log q, so per task one ``irlhf.llm.rollout.rollout`` call reproduces train's
first step (its first global batch of 32 demonstrations, K = 4 samples each, the same sampling seed) with the start
model, and ``sequence_logps`` scores the demonstrations: std of log q(y_k|x) over the K samples of a prompt (mean
over prompts), std over all 128, mean sample log q, mean log q(y_E|x), and the share of prompts whose
demonstration is less likely under q than every one of its samples.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
import types
import warnings
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

from irlhf.eval import llm_imitation  # noqa: E402
from irlhf.llm import reward, seq_maxent  # noqa: E402
from irlhf.llm.logps import sequence_logps  # noqa: E402
from irlhf.llm.loop import global_batches  # noqa: E402
from irlhf.llm.rollout import rollout  # noqa: E402
from irlhf.llm.sft import load_sft_data  # noqa: E402
from irlhf.llm.tokenize import collate, pad_id_of  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "seq_maxent_ess.json"
TASKS = ("addition", "sentiment")
PROPOSALS = ("policy", "fused")
SEED, STEPS, BATCH, K = 0, 150, 32, 4


def maxent_config(task: str, setup: llm_imitation.Setup, proposal: str) -> seq_maxent.Config:
    rates = llm_imitation.TASK_RATES[task]
    return seq_maxent.Config(
        steps=STEPS, reward_steps=3, batch_size=BATCH, k_samples=K, beta=0.05,
        reward_learning_rate=rates["reward_learning_rate"], policy_learning_rate=rates["rl_learning_rate"],
        max_new_tokens=setup.max_new_tokens, max_length=64, log_every=10, seed=SEED, progress=False,
        demo_proposal=proposal)


@torch.no_grad()
def first_step_log_q(setup: llm_imitation.Setup, config: seq_maxent.Config) -> dict[str, float]:
    """Train's first step re-drawn with the start model (seq_maxent's private helpers, so this follows them)."""
    model, tokenizer = setup.start.eval(), setup.tokenizer
    demos, _ = seq_maxent._encode_demos(tokenizer, load_sft_data(setup.demos), config, seq_maxent._context(model))
    rows = next(global_batches(len(demos), config.batch_size, config.steps, config.seed))
    local = [demos[i] for i in rows]
    prompt_ids = [list(e.input_ids[:e.n_prompt]) for e in local for _ in range(K)]
    sampling = types.SimpleNamespace(temperature=config.temperature, max_new_tokens=config.max_new_tokens,
                                     missing_eos_penalty=None)
    batch = rollout(model, tokenizer, [""] * len(prompt_ids), prompt_ids,
                    lambda p, c: np.zeros(len(c)), sampling, ref_model=model,
                    seed=seq_maxent._seed(config.seed, 1, 0))
    log_q = batch.logps.sum(-1).view(len(local), K).double()
    device = next(model.parameters()).device
    demo_batch = {key: v.to(device) for key, v in collate(local, pad_id_of(tokenizer)).items()}
    log_q_demo = sequence_logps(model, demo_batch, config.temperature).double().cpu()
    lengths = batch.completion_mask.sum(-1).double()
    return {"log_q_std_within_prompt": float(log_q.std(-1).mean()), "log_q_std_all": float(log_q.std()),
            "log_q_mean": float(log_q.mean()), "log_q_min": float(log_q.min()), "log_q_max": float(log_q.max()),
            "log_q_demo_mean": float(log_q_demo.mean()), "log_q_demo_min": float(log_q_demo.min()),
            "demo_below_all_samples": float((log_q_demo[:, None] < log_q.cpu()).all(-1).double().mean()),
            "sample_length_mean": float(lengths.mean()), "n_prompts": len(local), "k": K}


def spearman(setup: llm_imitation.Setup, reward_fn) -> float:
    from scipy.stats import spearmanr

    prompts, texts, truth = setup.heldout
    learned = np.asarray(reward_fn(prompts, texts), dtype=np.float64)
    if np.ptp(truth) == 0 or np.ptp(learned) == 0:
        return float("nan")
    return float(spearmanr(learned, truth).statistic)


def run_one(task: str, setup: llm_imitation.Setup, proposal: str) -> tuple[dict, list[dict]]:
    config = maxent_config(task, setup, proposal)
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = seq_maxent.train(copy.deepcopy(setup.start), setup.tokenizer, setup.demos, config,
                                  ref_model=setup.start)
    seconds = time.perf_counter() - started
    collapse = [str(w.message) for w in caught if "importance weights collapsed" in str(w.message)]
    hist = result.history
    first = [r for r in hist if r["step"] <= 10]
    last = [r for r in hist if r["step"] > STEPS - 50]
    policy = result.model.eval()
    evaluation = llm_imitation.evaluate(policy, None, setup, llm_imitation.Config(task=task), SEED)
    row = {"task": task, "demo_proposal": proposal,
           "ess_fraction_first10": float(np.mean([r["ess_fraction"] for r in first])),
           "ess_fraction_last50": float(np.mean([r["ess_fraction"] for r in last])),
           "share_steps_collapsed": float(np.mean([r["ess_collapsed"] > 0.5 for r in hist])),
           "warned": bool(collapse), "warning": collapse[0] if collapse else None,
           "warned_step": int(collapse[0].split(":")[0].split()[1]) if collapse else None,
           "reward_loss_first": hist[0]["reward/loss"], "reward_loss_last": hist[-1]["reward/loss"],
           "reward_gap_last": hist[-1]["reward/demo"] - hist[-1]["reward/samples"],
           "reward_spearman": spearman(setup, reward.as_reward_fn(result.reward_model, setup.tokenizer)),
           "score": evaluation["score"], "score_sem": evaluation["score_sem"], "kl": evaluation["kl"],
           "seconds": round(seconds, 1)}
    print(f"{task} {proposal}: {json.dumps({k: v for k, v in row.items() if k != 'warning'})}", flush=True)
    return row, hist


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    load_start = uptime()
    print(f"load at start: {load_start}", flush=True)
    total = time.perf_counter()
    rows, histories, log_q, baselines = [], {}, {}, {}
    for task in TASKS:
        setup_config = llm_imitation.Config(task=task)
        started = time.perf_counter()
        setup = llm_imitation.SETUPS[task](setup_config, SEED, print)
        print(f"{task}: setup {time.perf_counter() - started:.0f} s", flush=True)
        log_q[task] = first_step_log_q(setup, maxent_config(task, setup, "fused"))
        print(f"{task} first-step log q: {json.dumps(log_q[task])}", flush=True)
        baselines[task] = llm_imitation.evaluate(setup.start, None, setup, setup_config, SEED)["score"]
        for proposal in PROPOSALS:
            row, hist = run_one(task, setup, proposal)
            rows.append(row)
            histories[f"{task}/{proposal}"] = hist
    load_end = uptime()

    print("\n| task | proposal | ESS frac first 10 | ESS frac last 50 | steps collapsed | warned (step) "
          "| reward/loss first -> last | gap demo - samples | Spearman | score (pi_SFT) | KL | s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        warned = f"yes ({r['warned_step']})" if r["warned"] else "no"
        print(f"| {r['task']} | {r['demo_proposal']} | {r['ess_fraction_first10']:.2f} | "
              f"{r['ess_fraction_last50']:.2f} | {r['share_steps_collapsed']:.0%} | {warned} | "
              f"{r['reward_loss_first']:.2f} -> {r['reward_loss_last']:.2f} | {r['reward_gap_last']:.2f} | "
              f"{r['reward_spearman']:.2f} | {r['score']:.3f} ({baselines[r['task']]:.3f}) | {r['kl']:.2f} | "
              f"{r['seconds']:.0f} |")
    print("\n| task | mean len | log q std within prompt | log q std all | mean log q | mean log q(y_E) "
          "| demo below all K |")
    print("|---|---|---|---|---|---|---|")
    for task, s in log_q.items():
        print(f"| {task} | {s['sample_length_mean']:.1f} | {s['log_q_std_within_prompt']:.1f} | "
              f"{s['log_q_std_all']:.1f} | {s['log_q_mean']:.1f} | {s['log_q_demo_mean']:.1f} | "
              f"{s['demo_below_all_samples']:.0%} |")
    print(f"\nload at start: {load_start}\nload at end:   {load_end}\n"
          f"total {time.perf_counter() - total:.0f} s", flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "command": ".venv/bin/python benchmarks/seq_maxent_ess.py", "seed": SEED, "steps": STEPS,
        "batch_size": BATCH, "k_samples": K, "torch_threads": torch.get_num_threads(), "python": sys.version,
        "torch": torch.__version__, "load_start": load_start, "load_end": load_end,
        "start_scores": baselines, "rows": rows, "first_step_log_q": log_q, "histories": histories,
    }, indent=1) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
