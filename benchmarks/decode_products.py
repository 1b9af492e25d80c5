"""Where sampling's decoding time goes on the CPU, and what decode kernels (irlhf.llm.decode_kernels) change.

    python benchmarks/decode_products.py [--rows 1 4 8 16] [--repeats 5]

1. Memory read bandwidth (a sum over 100 MB) and, for each row count M, the weight bytes per second moved by the
   products of one decoding step of the "medium" benchmark model (GPT-2, 8 layers x 512, vocabulary 4096; its 33
   weight matrices): Hugging Face's Conv1D product ``addmm(b, x, W)`` with W (in, out) (what TRL's ``generate``
   runs), ``F.linear`` with W (out, in), and oneDNN's linear on the weight prepacked once.
2. Whole sampling: 2 prompts x 4 samples x 64 new tokens through ``rollout._sample_tokens`` with the decode kernels (packed
   products, fused GELU) and without (same seed; the script checks the tokens are equal), best of ``--repeats``.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F

from irlhf.llm import decode_kernels, rollout

MEDIUM = dict(vocab_size=4096, n_positions=256, n_embd=512, n_layer=8, n_head=8,
              resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)


def best_seconds(fn, repeats: int, inner: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - start) / inner)
    return best


def step_products(model, rows: int, repeats: int) -> dict[str, float]:
    """GB/s of weights moved by one decoding step's products, three ways."""
    layers = [m for m in model.modules() if decode_kernels._weight_out_in(m) is not None]
    out_in = [decode_kernels._weight_out_in(m) for m in layers]
    in_out = [w.t().contiguous() for w in out_in]
    biases = [torch.zeros(w.shape[0]) if m.bias is None else m.bias.detach() for m, w in zip(layers, out_in)]
    packed = [torch.ops.mkldnn._reorder_linear_weight(w, rows) for w in out_in]
    inputs = {w.shape[1]: torch.randn(rows, w.shape[1]) for w in out_in}
    gigabytes = sum(w.numel() * 4 for w in out_in) / 1e9
    ways = {
        "addmm (in, out)": lambda: [torch.addmm(b, inputs[w.shape[0]], w) for w, b in zip(in_out, biases)],
        "linear (out, in)": lambda: [F.linear(inputs[w.shape[1]], w, b) for w, b in zip(out_in, biases)],
        "oneDNN packed": lambda: [torch.ops.mkldnn._linear_pointwise(inputs[w.shape[1]], p, b, "none", [], "")
                                  for w, p, b in zip(out_in, packed, biases)],
    }
    return {name: gigabytes / best_seconds(fn, repeats, 20) for name, fn in ways.items()}


def sampling_seconds(model, packed: bool, repeats: int) -> tuple[float, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    prompts = [torch.randint(0, 4000, (length,), generator=generator).tolist() for length in (60, 45)]
    rows = [ids for ids in prompts for _ in range(4)]
    best, tokens = float("inf"), None
    for _ in range(repeats):
        with torch.random.fork_rng():
            torch.manual_seed(1)
            start = time.perf_counter()
            tokens, _ = rollout._sample_tokens(model, rows, 1.0, 64, eos_id=4095, pad_id=0, packed=packed)
            best = min(best, time.perf_counter() - start)
    return best, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from transformers import GPT2Config, GPT2LMHeadModel

    if not decode_kernels.available():
        raise SystemExit("this torch build has no oneDNN linear; nothing to compare")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(**MEDIUM)).eval()
    load_before = os.getloadavg()
    memory = torch.randn(25_000_000)
    read = 0.1 / best_seconds(lambda: memory.sum(), args.repeats, 5)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; memory read {read:.1f} GB/s (sum of 100 MB)")
    print("| rows M | " + " | ".join(["addmm (in, out)", "linear (out, in)", "oneDNN packed"]) + " |  (GB/s of weights)")
    print("|---|---|---|---|")
    for rows in args.rows:
        rates = step_products(model, rows, args.repeats)
        print(f"| {rows} | " + " | ".join(f"{rate:.1f}" for rate in rates.values()) + " |")
    plain, plain_tokens = sampling_seconds(model, False, args.repeats)
    packed, packed_tokens = sampling_seconds(model, True, args.repeats)
    print(f"sampling 2 prompts x 4 x 64 tokens: model's own modules {plain:.3f} s, decode kernels {packed:.3f} s "
          f"({plain / packed:.2f}x); same tokens: {bool(torch.equal(plain_tokens, packed_tokens))}")
    print(f"load before {load_before}, after {os.getloadavg()}")


if __name__ == "__main__":
    main()
