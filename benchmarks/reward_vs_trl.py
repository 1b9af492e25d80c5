"""Reward-model training: irlhf.llm.reward vs TRL's RewardTrainer, same models, same data, same run.

Setup: a local byte-level BPE tokenizer (vocab ~4096, ``tokenizers``, trained on generated text; pad "<pad>",
eos "</s>", no BOS) and a randomly initialised GPT-2 sequence-classification model (num_labels=1, pad_token_id =
"<pad>"), both built here (no downloads). Data: generated {prompt, chosen, rejected} pairs whose sequences all
fit in max_length (TRL drops longer sequences where irlhf truncates them; here nothing is cut).

TRL runs with its defaults except what must match: learning_rate, per-device batch size (one process, so
global = per-device), max_length, seed, epochs=1, report_to="none", use_cpu=True, no eval, no saving, and
``bf16=False`` (TRL's RewardConfig defaults bf16 to True; irlhf trains in the model's fp32) and
``gradient_checkpointing=False`` (TRL's default is True, which trades speed for memory; irlhf does not
checkpoint, so the timing compares like with like). Both: AdamW (betas 0.9/0.999, eps 1e-8, weight decay 0),
linear decay to 0 without warmup, gradient clipping at 1.0, dropout disabled.

What differs by default (and why the numbers still agree):
- EOS: TRL appends the EOS *text* to each response before tokenising prompt+response jointly; irlhf tokenises
  prompt+response jointly and appends the EOS *id*. Same ids for this tokenizer (EOS is a special token).
- BOS: both follow the tokenizer (this one adds none).
- Pooling: TRL uses Hugging Face's pooling (rightmost token != pad_token_id), irlhf the last token of the
  attention mask. Same token here because pad != eos; with pad == eos HF would read the token before EOS.
- Centring: off in both (center_rewards_coefficient=None).
- Row order: TRL's sampler and irlhf's ``global_batches`` shuffle differently, so the step-0 check feeds both
  loss functions the SAME token sequences (TRL's collator output) and compares loss and every gradient.

Timing: end-to-end training throughput in pairs per second, tokenisation included (TRL: from constructing
``RewardTrainer`` to the end of ``train()``; irlhf: the ``reward.train`` call), model construction excluded,
median of ``--repeats`` runs, one thread (``torch.set_num_threads``).

    python benchmarks/reward_vs_trl.py                      # tiny: GPT-2 4 layers, width 128, 256 pairs, T=64
    python benchmarks/reward_vs_trl.py --size medium        # 8 layers, width 512, T=256, 64 pairs

Prints a markdown table and writes benchmarks/out/reward_vs_trl.json.
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
SIZES = {"tiny": dict(n_layer=4, n_embd=128, n_head=4, max_length=64, n_pairs=256, batch_size=32),
         "medium": dict(n_layer=8, n_embd=512, n_head=8, max_length=256, n_pairs=64, batch_size=32)}
WORDS = ("the a film plot music acting was is great awful dull fun loved hated scene story actor "
         "director long short bright dark and but very quite really not so good bad happy sad i we "
         "they it this that movie show song book read watched saw felt").split()


def make_text(rng: np.random.Generator, n_words: int) -> str:
    return " ".join(rng.choice(WORDS, n_words))


def make_tokenizer(vocab_size: int = 4096):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    rng = np.random.default_rng(123)
    corpus = [make_text(rng, 40) + "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz,.;!?"), 30)) for _ in range(4000)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>"],
                                  show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")


def make_pairs(n: int, max_length: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    words = max(4, max_length // 3)  # a few tokens per word at most: sequences stay under max_length
    rows = []
    for _ in range(n):
        rows.append({"prompt": make_text(rng, int(rng.integers(2, words // 2))),
                     "chosen": " " + make_text(rng, int(rng.integers(1, words // 2))),
                     "rejected": " " + make_text(rng, int(rng.integers(1, words // 2)))})
    return rows


def make_model(vocab_size: int, size: dict, pad_id: int, seed: int = 0):
    from transformers import GPT2Config, GPT2ForSequenceClassification

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=vocab_size, n_positions=max(size["max_length"], 64), n_embd=size["n_embd"],
                        n_layer=size["n_layer"], n_head=size["n_head"], num_labels=1, pad_token_id=pad_id)
    return GPT2ForSequenceClassification(config)


def trl_args(size: dict, out: str, lr: float, seed: int):
    from trl import RewardConfig

    return RewardConfig(output_dir=out, learning_rate=lr, per_device_train_batch_size=size["batch_size"],
                        max_length=size["max_length"], seed=seed, num_train_epochs=1, report_to="none",
                        use_cpu=True, bf16=False, gradient_checkpointing=False, save_strategy="no",
                        eval_strategy="no", logging_steps=10 ** 6, disable_tqdm=True, dataloader_num_workers=0)


def check_step0(tokenizer, rows: list[dict], size: dict, seed: int) -> dict:
    """Loss and gradients of both implementations on the same token sequences (TRL's collated batch)."""
    from datasets import Dataset
    from trl import RewardTrainer

    from irlhf.data.text import TextPairs
    from irlhf.llm import reward
    from irlhf.llm.tokenize import TokenizeOptions, collate_pairs, encode_pairs

    batch_rows = rows[:size["batch_size"]]
    base = make_model(len(tokenizer), size, tokenizer.pad_token_id, seed)
    with tempfile.TemporaryDirectory() as out:
        trainer = RewardTrainer(model=copy.deepcopy(base), args=trl_args(size, out, 1e-4, seed),
                                train_dataset=Dataset.from_list(batch_rows), processing_class=tokenizer)
        trl_model = trainer.model
        trl_model.train()
        inputs = trainer.data_collator([trainer.train_dataset[i] for i in range(len(batch_rows))])
        trl_loss = trainer.compute_loss(trl_model, dict(inputs))
        trl_loss.backward()
    ours_model = copy.deepcopy(base)
    for module in ours_model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    ours_model.train()
    pairs = TextPairs.from_rows(batch_rows)
    chosen, rejected, kept = encode_pairs(tokenizer, pairs, TokenizeOptions(max_length=size["max_length"]))
    batch = collate_pairs(chosen, rejected, tokenizer.pad_token_id)
    same_ids = bool(torch.equal(batch["input_ids"], inputs["input_ids"]))
    r = reward.rewards(ours_model, {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]})
    n = len(batch_rows)
    ours_loss = reward.pairwise_loss(r[:n], r[n:]).mean()
    ours_loss.backward()
    grads = dict(trl_model.named_parameters())
    max_diff = max(float((p.grad - grads[name].grad).abs().max()) for name, p in ours_model.named_parameters())
    max_grad = max(float(p.grad.abs().max()) for p in ours_model.parameters())
    return {"trl_loss": float(trl_loss), "irlhf_loss": float(ours_loss),
            "loss_abs_diff": abs(float(trl_loss) - float(ours_loss)), "grad_max_abs_diff": max_diff,
            "grad_max_abs": max_grad, "same_token_ids": same_ids, "n_kept": len(kept)}


def time_trl(tokenizer, rows: list[dict], size: dict, seed: int, lr: float) -> float:
    from datasets import Dataset
    from trl import RewardTrainer

    model = make_model(len(tokenizer), size, tokenizer.pad_token_id, seed)
    dataset = Dataset.from_list(rows)
    with tempfile.TemporaryDirectory() as out:
        args = trl_args(size, out, lr, seed)
        t0 = time.perf_counter()
        trainer = RewardTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
        trainer.train()
        return time.perf_counter() - t0


def time_irlhf(tokenizer, rows: list[dict], size: dict, seed: int, lr: float) -> float:
    from irlhf.data.text import TextPairs
    from irlhf.llm import reward

    model = make_model(len(tokenizer), size, tokenizer.pad_token_id, seed)
    config = reward.Config(learning_rate=lr, batch_size=size["batch_size"], max_length=size["max_length"],
                           seed=seed, progress=False, device="cpu", log_every=10 ** 6)
    t0 = time.perf_counter()
    reward.train(model, tokenizer, TextPairs.from_rows(rows), config)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import datasets
    import transformers
    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()

    size = SIZES[args.size]
    tokenizer = make_tokenizer()
    rows = make_pairs(size["n_pairs"], size["max_length"], args.seed)
    lengths = [len(tokenizer(r["prompt"] + r[k])["input_ids"]) + 1 for r in rows for k in ("chosen", "rejected")]
    assert max(lengths) <= size["max_length"], f"a sequence of {max(lengths)} tokens; make_pairs must fit"
    step0 = check_step0(tokenizer, rows, size, args.seed)
    lr = 1e-4
    trl_times, ours_times = [], []
    for _ in range(args.repeats):
        trl_times.append(time_trl(tokenizer, rows, size, args.seed, lr))
        ours_times.append(time_irlhf(tokenizer, rows, size, args.seed, lr))
    trl_sps = len(rows) / statistics.median(trl_times)
    ours_sps = len(rows) / statistics.median(ours_times)
    result = {"size": args.size, **size, "vocab_size": len(tokenizer), "mean_tokens": float(np.mean(lengths)),
              "threads": args.threads, "repeats": args.repeats, "step0": step0,
              "trl_seconds": trl_times, "irlhf_seconds": ours_times, "trl_pairs_per_s": trl_sps,
              "irlhf_pairs_per_s": ours_sps, "speedup": ours_sps / trl_sps,
              "versions": {p: importlib.metadata.version(p) for p in ("torch", "transformers", "trl")},
              "machine": platform.platform()}
    print("| size | pairs | T | irlhf pairs/s | TRL pairs/s | speedup | step-0 loss diff | max grad diff |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {args.size} | {len(rows)} | {size['max_length']} | {ours_sps:.1f} | {trl_sps:.1f} | "
          f"{ours_sps / trl_sps:.2f}x | {step0['loss_abs_diff']:.1e} | {step0['grad_max_abs_diff']:.1e} |")
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    path = out / "reward_vs_trl.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    previous[args.size] = result
    path.write_text(json.dumps(previous, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
