"""irlhf.llm.dpo against TRL's DPOTrainer (trl 1.16): same loss and gradients, speed, peak memory. CPU only.

    python benchmarks/dpo_vs_trl.py [--sizes tiny medium equal] [--repeats 3] [--threads N]
                                                                    # writes benchmarks/out/dpo_vs_trl.json

Models: GPT-2 built from a config (dropout 0), "tiny" (4 layers, width 128, 256 pairs, batch 32, max length 64:
overhead dominates), "medium" (8 layers, width 512, 64 pairs, batch 8, max length 256: compute dominates) and
"equal" (6 layers, width 384, 128 pairs, batch 32, every sequence 128 tokens from a word-level tokenizer: no padding
for either library to save).
Tokenizer: a byte-level BPE (vocab 4096) trained here on generated text; data: generated prompt/chosen/rejected
strings (completions start with a space, so no BPE merge crosses the prompt/completion boundary). Nothing is
downloaded.

TRL runs with its DEFAULTS except what must match: beta, learning_rate, per_device_train_batch_size, max_length,
num_train_epochs=1, seed, use_cpu=True, bf16=False (TRL's default is bf16=True, which on CPU autocasts the
forward to bf16; ours computes in the model's fp32), report_to="none", save_strategy="no" (nothing on disk).
Default differences that remain in the timed runs: TRL loads its own reference model from the policy's path and
runs it every step (precompute_ref_log_probs=False); ours computes the reference log-probs once before training,
with the initial policy (no second model). TRL pads all 2B rows of a step (chosen and rejected) to the batch's
longest row; ours splits them into groups of similar length, each padded to its own longest row, all in one
forward call (the same log-probs, fewer padded tokens computed). TRL decays the learning rate linearly; ours keeps it
constant.

(1) Equivalence at step 0 is checked on the SAME token sequences, with the policy moved off the reference by
    seeded noise (with policy == reference both losses are trivially log 2). By default the two tokenise differently:
    TRL appends the EOS *text* to each completion and re-tokenises; it puts the prompt/completion boundary at
    the shorter common prefix of tokenize(prompt) with tokenize(prompt+chosen) and tokenize(prompt+rejected)
    (ours: per side); it adds BOS only as the tokenizer does (ours: add_bos="auto", the same here); it truncates
    the whole sequence on the right at max_length (ours: keeps the prompt, cuts the completion, and drops a pair
    whose completion would be empty). With this data (no boundary merges, no truncation) the sequences coincide;
    the script asserts it, then compares loss and every parameter's gradient of one step (ours computed as in
    training: the rows in length groups, one forward call).
(2) Samples/s: pairs / wall time of the whole training call (tokenisation included; model loading excluded),
    best of --repeats, time.perf_counter.
(3) Peak memory: a fresh subprocess per measurement imports its library, resets its peak RSS (Linux
    /proc/self/clear_refs "5"), then loads the model and tokenizer, tokenises and runs one DPO step on one batch
    (TRL: builds DPOTrainer, which also loads its reference model, and trains max_steps=1); "step MiB" is the
    peak RSS (VmHWM) minus the RSS just before. tracemalloc does not see torch's allocator, so RSS is the honest
    number on CPU; it includes allocator slack and library caches. (resource.getrusage's max RSS of the whole
    process is also stored, but import-time peaks dominate it at the tiny size.)
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

SIZES = {
    "tiny": dict(n_layer=4, n_embd=128, n_head=4, pairs=256, batch=32, max_length=64, words=(6, 14, 4, 20)),
    "medium": dict(n_layer=8, n_embd=512, n_head=8, pairs=64, batch=8, max_length=256, words=(20, 60, 30, 100)),
    # every sequence exactly 128 tokens (64 prompt words, 63 completion words + EOS) with a word-level tokenizer:
    # no padding for either library to save
    "equal": dict(n_layer=6, n_embd=384, n_head=6, pairs=128, batch=32, max_length=128, words=(64, 64, 63, 63),
                  tokenizer="word"),
}
BETA, LR, SEED = 0.1, 1e-5, 0
WORDS = ("the film plot acting music scene was is great dull awful loved hated and but very quite truly a an of "
         "story ending actor director camera score long short funny sad bright dark slow fast good bad fine "
         "i you we they it this that with without never always really").split()


def make_texts(n: int, words: tuple[int, int, int, int], seed: int) -> list[dict[str, str]]:
    rng = np.random.default_rng(seed)
    lo_p, hi_p, lo_c, hi_c = words

    def sentence(lo: int, hi: int) -> str:
        return " ".join(rng.choice(WORDS, size=int(rng.integers(lo, hi + 1))))

    return [{"prompt": sentence(lo_p, hi_p), "chosen": " " + sentence(lo_c, hi_c),
             "rejected": " " + sentence(lo_c, hi_c)} for _ in range(n)]


def make_tokenizer(path: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=4096, special_tokens=["<pad>", "<s>", "</s>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = [row[k] for row in make_texts(3000, (5, 40, 5, 40), seed=123) for k in ("prompt", "chosen")]
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    fast.save_pretrained(path)
    return fast


def make_word_tokenizer(path: Path):
    """One token per word of WORDS (whitespace split; the special tokens are matched before splitting, so TRL's
    appended EOS text is one token too)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {word: k for k, word in enumerate(["<pad>", "<s>", "</s>", "<unk>", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>")
    fast.save_pretrained(path)
    return fast


def make_model(size: str, vocab: int, path: Path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    spec = SIZES[size]
    torch.manual_seed(SEED)
    config = GPT2Config(vocab_size=vocab, n_positions=max(spec["max_length"], 64), n_embd=spec["n_embd"],
                        n_layer=spec["n_layer"], n_head=spec["n_head"], resid_pdrop=0.0, embd_pdrop=0.0,
                        attn_pdrop=0.0, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    GPT2LMHeadModel(config).save_pretrained(path)


def prepare(size: str, parent: Path) -> tuple[Path, list[dict[str, str]]]:
    """The tokenizer and fresh model of ``size`` saved under parent/size, and the size's generated pair rows."""
    spec = SIZES[size]
    model_dir = parent / size
    tokenizer = (make_word_tokenizer if spec.get("tokenizer") == "word" else make_tokenizer)(model_dir)
    make_model(size, len(tokenizer), model_dir)
    return model_dir, make_texts(spec["pairs"], spec["words"], seed=SEED)


def load_model(path: Path):
    from transformers import GPT2LMHeadModel
    return GPT2LMHeadModel.from_pretrained(path)


def trl_config(size: str, out: str):
    from trl import DPOConfig
    spec = SIZES[size]
    return DPOConfig(output_dir=out, beta=BETA, learning_rate=LR, per_device_train_batch_size=spec["batch"],
                     max_length=spec["max_length"], num_train_epochs=1, seed=SEED, use_cpu=True, bf16=False,
                     report_to="none", save_strategy="no", disable_tqdm=True)


def ours_config(size: str):
    from irlhf.llm import dpo
    spec = SIZES[size]
    return dpo.Config(beta=BETA, learning_rate=LR, batch_size=spec["batch"], max_length=spec["max_length"],
                      epochs=1, seed=SEED, progress=False, device="cpu")


def run_ours(model_dir: Path, rows: list[dict[str, str]], size: str, max_steps: int | None = None) -> float:
    from transformers import AutoTokenizer
    from irlhf.data.text import TextPairs
    from irlhf.llm import dpo

    tokenizer, model = AutoTokenizer.from_pretrained(model_dir), load_model(model_dir)
    start = time.perf_counter()
    dpo.train(model, tokenizer, TextPairs.from_rows(rows), ours_config(size).replace(max_steps=max_steps))
    return time.perf_counter() - start


def run_trl(model_dir: Path, rows: list[dict[str, str]], size: str, max_steps: int | None = None) -> float:
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import DPOTrainer

    tokenizer, model = AutoTokenizer.from_pretrained(model_dir), load_model(model_dir)
    with tempfile.TemporaryDirectory() as out:
        args = trl_config(size, out)
        if max_steps is not None:
            args.max_steps = max_steps
        start = time.perf_counter()
        trainer = DPOTrainer(model=model, ref_model=None, args=args, train_dataset=Dataset.from_list(rows),
                             processing_class=tokenizer)
        trainer.train()
        return time.perf_counter() - start


# -- (1) same loss and gradients at step 0 ---------------------------------------------------------------------
def equivalence(model_dir: Path, rows: list[dict[str, str]], size: str) -> dict[str, float]:
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import DPOTrainer
    from irlhf.data.text import TextPairs
    from irlhf.llm import dpo
    from irlhf.llm.tokenize import collate_pairs, encode_pairs, pad_id_of

    batch_size = SIZES[size]["batch"]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    base = load_model(model_dir)
    ref = copy.deepcopy(base).eval()
    torch.manual_seed(1)
    with torch.no_grad():  # move the policy off the reference, so the loss is not trivially log 2
        for p in base.parameters():
            p.add_(0.05 * torch.randn_like(p))
    policy_trl, policy_ours = copy.deepcopy(base), copy.deepcopy(base)
    with tempfile.TemporaryDirectory() as out:
        trainer = DPOTrainer(model=policy_trl, ref_model=copy.deepcopy(ref), args=trl_config(size, out),
                             train_dataset=Dataset.from_list(rows[:batch_size]), processing_class=tokenizer)
        examples = [{k: trainer.train_dataset[i][k] for k in ("prompt_ids", "chosen_ids", "rejected_ids")}
                    for i in range(batch_size)]
        trl_batch = trainer.data_collator(examples)
        trainer.model.train()
        trl_loss = trainer.compute_loss(trainer.model, trl_batch)
        trl_loss.backward()
    trl_grads = {k: p.grad.clone() for k, p in policy_trl.named_parameters() if p.grad is not None}

    options = ours_config(size).tokenize_options
    chosen, rejected, kept = encode_pairs(tokenizer, TextPairs.from_rows(rows[:batch_size]), options)
    assert len(kept) == batch_size, "the benchmark data must not be truncated"
    batch = collate_pairs(chosen, rejected, pad_id_of(tokenizer))
    for row in range(2 * batch_size):  # the same token sequences and completion masks as TRL's
        mine, theirs = batch["attention_mask"][row].bool(), trl_batch["attention_mask"][row].bool()
        assert batch["input_ids"][row][mine].tolist() == trl_batch["input_ids"][row][theirs].tolist(), row
        assert (batch["completion_mask"][row][mine].tolist()
                == trl_batch["completion_mask"][row][theirs].bool().tolist()), row
    rows = chosen + rejected  # the rows of batch, scored as dpo.train does: length groups, one forward call
    with torch.no_grad():
        ref_logps = dpo.grouped_logps(dpo.GroupedLogps(ref), rows, pad_id_of(tokenizer))
    policy_ours.train()
    logps = dpo.grouped_logps(dpo.GroupedLogps(policy_ours), rows, pad_id_of(tokenizer))
    losses, _, _ = dpo.loss(logps[:batch_size], logps[batch_size:], ref_logps[:batch_size], ref_logps[batch_size:],
                            beta=BETA)
    our_loss = losses.mean()
    our_loss.backward()
    rel = max(float((p.grad - trl_grads[k]).norm() / trl_grads[k].norm().clamp_min(1e-30))
              for k, p in policy_ours.named_parameters() if p.grad is not None)
    elementwise = max(float(((p.grad - trl_grads[k]).abs() / (trl_grads[k].abs().max().clamp_min(1e-30))).max())
                      for k, p in policy_ours.named_parameters() if p.grad is not None)
    our_loss, trl_loss = float(our_loss.detach()), float(trl_loss.detach())
    return {"loss_ours": our_loss, "loss_trl": trl_loss, "loss_rel_diff": abs(our_loss - trl_loss) / abs(trl_loss),
            "grad_max_rel_diff_norm": rel, "grad_max_abs_diff_over_max": elementwise}


# -- (3) peak memory of one step, in a fresh process --------------------------------------------------------------
def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def memory_child(which: str, size: str, model_dir: str) -> None:
    rows = make_texts(SIZES[size]["batch"], SIZES[size]["words"], seed=SEED)
    # the libraries each branch uses are imported (and their lazy modules loaded) outside the measured window
    from transformers import AutoTokenizer, GPT2LMHeadModel
    from irlhf.data.text import TextPairs
    from irlhf.llm import dpo
    loaded = [AutoTokenizer, GPT2LMHeadModel, TextPairs, dpo]
    if which == "trl":
        from datasets import Dataset
        from trl import DPOConfig, DPOTrainer
        loaded += [Dataset, DPOConfig, DPOTrainer]
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS (VmHWM) to the current RSS
    before = _status_kib("VmRSS")
    (run_ours if which == "ours" else run_trl)(Path(model_dir), rows, size, max_steps=1)
    peak = _status_kib("VmHWM")
    print(json.dumps({"before_kib": before, "peak_kib": peak,
                      "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def measure_memory(which: str, size: str, model_dir: Path) -> dict[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    code = f"import benchmarks.dpo_vs_trl as b; b.memory_child({which!r}, {size!r}, {str(model_dir)!r})"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    values = json.loads(done.stdout.strip().splitlines()[-1])
    return {"peak_mib": values["peak_kib"] / 1024, "step_mib": (values["peak_kib"] - values["before_kib"]) / 1024,
            "process_maxrss_mib": values["maxrss_kib"] / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "medium"], choices=list(SIZES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's own default, one per core; the first runs used 1)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    import transformers
    transformers.logging.set_verbosity_error()
    results = {"torch_threads": torch.get_num_threads(), "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            spec = SIZES[size]
            model_dir, rows = prepare(size, Path(tmp))
            entry = {"spec": {k: v for k, v in spec.items() if k != "words"}, "torch_threads": torch.get_num_threads()}
            entry["equivalence"] = equivalence(model_dir, rows, size)
            times = {"ours": [], "trl": []}
            for _ in range(args.repeats):
                times["ours"].append(run_ours(model_dir, rows, size))
                times["trl"].append(run_trl(model_dir, rows, size))
            entry["seconds"] = times
            entry["samples_per_s"] = {k: spec["pairs"] / min(v) for k, v in times.items()}
            entry["speedup"] = entry["samples_per_s"]["ours"] / entry["samples_per_s"]["trl"]
            if not args.no_memory:
                entry["memory"] = {k: measure_memory(k, size, model_dir) for k in ("ours", "trl")}
            results["sizes"][size] = entry
            print(f"[{size}] done: {json.dumps(entry)}", file=sys.stderr)
    print("| size | loss ours | loss TRL | max rel grad diff | ours samples/s | TRL samples/s | speedup "
          "| ours step MiB | TRL step MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size, e in results["sizes"].items():
        eq, sps, mem = e["equivalence"], e["samples_per_s"], e.get("memory", {})
        print(f"| {size} | {eq['loss_ours']:.6f} | {eq['loss_trl']:.6f} | {eq['grad_max_rel_diff_norm']:.2e} "
              f"| {sps['ours']:.1f} | {sps['trl']:.1f} | {e['speedup']:.2f}x "
              f"| {mem.get('ours', {}).get('step_mib', float('nan')):.0f} "
              f"| {mem.get('trl', {}).get('step_mib', float('nan')):.0f} |")
    out = Path(__file__).resolve().parent / "out" / "dpo_vs_trl.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
