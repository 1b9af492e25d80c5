"""irlhf.llm on a CUDA GPU: the trainers run there (fp32 and bf16), and a larger sentiment frontier.

    PYTHONPATH=src python benchmarks/llm_gpu_check.py --out DIR [--frontier-seconds 420]

(1) One short run of each trainer (SFT, reward model, DPO, PPO) on the GPU with the synthetic sentiment task's
    tokenizer and a tiny GPT-2, in fp32 and in bf16: finite losses, models left on the GPU; and the completion
    log-probs of a bf16 model against the same model in fp32 (fp32 log-softmax either way).
(2) The reward-KL frontier (``irlhf.llm.tasks.frontier``) with a larger GPT-2 (4 layers, width 256), seed by
    seed until the time budget is spent; rows are written after every seed, so a cut-off run keeps what it did.
Writes DIR/gpu_check.json, DIR/gpu_frontier.json and DIR/gpu_frontier.png.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch


def check_trainers() -> dict:
    from irlhf.llm import dpo, ppo, reward, sft
    from irlhf.llm.logps import sequence_logps
    from irlhf.llm.tasks import frontier, sentiment
    from irlhf.llm.tokenize import collate, encode

    device = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: a local dry run of this script
    out = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu", "torch": torch.__version__}
    tok = sentiment.build_tokenizer()
    prompts = sentiment.make_prompts(16, seed=1)
    base = sentiment.make_model(tok, seed=0)
    sentiment.pretrain(base, tok, sentiment.make_corpus(2000, seed=0), sentiment.PretrainConfig(steps=100))
    pairs = frontier.label_pairs(prompts, sentiment.generate(base, tok, prompts, 4, seed=0))
    for dtype in (torch.float32, torch.bfloat16):
        name = str(dtype).split(".")[-1]
        model = copy.deepcopy(base).to(dtype)
        t = time.perf_counter()
        r_sft = sft.train(copy.deepcopy(model), tok, frontier.sft_examples(64, 0), sft.Config(max_steps=5, progress=False))
        r_dpo = dpo.train(copy.deepcopy(model), tok, pairs, dpo.Config(max_steps=5, batch_size=16, progress=False))
        rm = reward.make_reward_model(model, tok, dtype=dtype)
        r_rm = reward.train(rm, tok, pairs, reward.Config(max_steps=5, batch_size=16, progress=False))
        r_ppo = ppo.train(copy.deepcopy(model), tok, prompts, frontier.true_reward,
                          ppo.Config(steps=3, batch_size=8, mini_batch_size=4, max_new_tokens=8, progress=False))
        out[name] = {"seconds": round(time.perf_counter() - t, 2),
                     "sft_loss": r_sft.history[-1]["loss"], "dpo_loss": r_dpo.history[-1]["loss"],
                     "reward_loss": r_rm.history[-1]["loss"], "ppo_score": r_ppo.history[-1]["objective/scores"],
                     "devices": sorted({str(p.device) for r in (r_sft, r_dpo, r_rm, r_ppo)
                                        for p in r.model.parameters()})}
    items = [encode(tok, p, " " + c) for p, c in zip(pairs.prompt[:16], pairs.chosen[:16])]
    batch = {k: v.to(device) for k, v in collate(items, 0).items()}
    with torch.no_grad():
        full = sequence_logps(copy.deepcopy(base).to(device), batch)
        half = sequence_logps(copy.deepcopy(base).to(device).bfloat16(), batch)
    out["bf16_vs_fp32_logps_max_abs_diff"] = float((full - half).abs().max())
    out["fp32_logps_mean"] = float(full.mean())
    return out


def run_frontier(out_dir: Path, budget: float) -> None:
    from irlhf.llm.tasks import frontier

    config = frontier.Config(n_layer=4, n_embd=256, corpus_reviews=20_000, pretrain_steps=1500, sft_steps=300,
                             n_train_prompts=512, n_eval_prompts=128, ppo_steps=100)
    rows, start = [], time.perf_counter()
    for done, seed in enumerate(config.seeds):
        elapsed = time.perf_counter() - start
        if done and elapsed + elapsed / done > budget:
            break  # another seed at the pace so far would overrun the budget
        seed_rows, *_ = frontier.run_seed(config, seed, log=lambda line: print(line, flush=True))
        rows += seed_rows
        (out_dir / "gpu_frontier.json").write_text(json.dumps({"config": config.to_dict(), "rows": rows,
                                                               "seconds": time.perf_counter() - start}, indent=1))
        frontier.plot(rows, out_dir / "gpu_frontier.png", title="sentiment frontier, GPT-2 4x256 (GPU)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--frontier-seconds", type=float, default=420.0, help="0 skips the frontier")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    result = check_trainers()
    print(json.dumps(result, indent=1), flush=True)
    (args.out / "gpu_check.json").write_text(json.dumps(result, indent=1))
    if args.frontier_seconds > 0:
        run_frontier(args.out, args.frontier_seconds)


if __name__ == "__main__":
    main()
