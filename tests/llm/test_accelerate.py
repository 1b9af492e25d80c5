"""Two CPU processes under ``accelerate launch`` (gloo DDP) run DPO, ORPO, offline IQ-Learn and sequence MaxEnt IRL
in one launch: DPO, ORPO and IQ-Learn give the same run as one process with the same global batch; seq_maxent (whose
processes sample their own prompts' completions, so its samples differ from one process's) finishes on both
ranks with finite history and identical policy and reward weights on both ranks after every optimiser step."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

pytest.importorskip("accelerate", reason="accelerate is not installed (pip install 'irlhf[llm]')")

SCRIPT = textwrap.dedent("""
    import hashlib, json, os, sys
    import torch
    torch.set_num_threads(1)
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, GPT2LMHeadModel
    from irlhf.data.text import TextPairs
    from irlhf.llm import dpo, iq_learn, orpo, seq_maxent

    def load(model_dir):
        return AutoTokenizer.from_pretrained(model_dir), GPT2LMHeadModel.from_pretrained(model_dir)

    def weights_of(model):
        return {k: v.detach().clone() for k, v in model.named_parameters()}

    def run_dpo(model_dir):
        tokenizer, model = load(model_dir)
        prompts = ["the film was", "the plot was", "the acting was"]
        good = [" great", " great and i loved the music!", " loved", " great greatness"]
        bad = [" dull", " awful", " dull and awful", " dullness"]
        data = TextPairs(tuple(prompts[k % 3] for k in range(20)), tuple(good[k % 4] for k in range(20)),
                         tuple(bad[(k + 1) % 4] for k in range(20)))
        # 20 rows, global batch 8: steps of 8, 8, 4 rows (the last one split unevenly across processes is fine too)
        config = dpo.Config(learning_rate=1e-3, batch_size=8, max_steps=3, max_length=32, log_every=1,
                            progress=False, beta=0.5, seed=3)
        result = dpo.train(model, tokenizer, data, config)
        return [row["loss"] for row in result.history], weights_of(result.model)

    def run_orpo(model_dir):
        # ORPO's NLL is a token mean over the global batch (prompt and answer of the chosen rows): split over two
        # processes as per-pair terms, it must still give one process's loss
        tokenizer, model = load(model_dir)
        prompts = ["the film was", "hello world, the plot was", "the acting"]
        good = [" great", " great and i loved the music!", " loved"]
        bad = [" dull and awful", " awful", " dullness"]
        data = TextPairs(tuple(prompts[k % 3] for k in range(10)), tuple(good[k % 3] for k in range(10)),
                         tuple(bad[(k + 2) % 3] for k in range(10)))
        config = orpo.Config(learning_rate=1e-3, batch_size=4, max_steps=3, max_length=32, log_every=1,
                             progress=False, lam=0.5, seed=6)
        result = orpo.train(model, tokenizer, data, config)
        return [row["loss"] for row in result.history], weights_of(result.model)

    def run_iq(model_dir):
        tokenizer, model = load(model_dir)
        completions = [" great", " dull and awful", " i loved the music!", " the plot was dull.", " awful",
                       " great and i loved the music! hello world, the film was great"]
        rows = [{"prompt": ["the film was", "the acting was", "hello world,"][k % 3], "completion": completions[k % 6]}
                for k in range(9)]
        # 9 rows, global batch 8, two epochs: steps of 8, 1, 8 rows; in the 1-row step process 1 has no row and
        # runs one at weight 0. max_length 12 cuts the longest completion (truncated, V bootstrapped)
        config = iq_learn.Config(learning_rate=1e-3, batch_size=8, epochs=2, max_steps=3, max_length=12,
                                 log_every=1, progress=False, seed=4)
        result = iq_learn.train(model, tokenizer, rows, config)
        assert result.n_truncated > 0
        return [row["loss"] for row in result.history], weights_of(result.model)

    def run_maxent(model_dir):
        # each optimiser step (reward, policy) records a digest of that model's trainable weights
        digests, made = [], []
        make_adamw = seq_maxent.adamw

        def adamw(model, *args, **kwargs):
            opt = make_adamw(model, *args, **kwargs)
            name, params = ("reward", "policy")[len(made)], [p for p in model.parameters() if p.requires_grad]
            made.append(name)

            def record(*_):
                h = hashlib.sha256()
                for p in params:
                    h.update(p.detach().contiguous().numpy().tobytes())
                digests.append([name, h.hexdigest()])
            opt.register_step_post_hook(record)
            return opt

        tokenizer, model = load(model_dir)
        demos = [{"prompt": p, "completion": c} for p, c in [("the film was", " great"), ("hello world", " dull"),
                                                             ("the acting", " was awful"), ("i loved", " the music!")]]
        config = seq_maxent.Config(steps=2, batch_size=4, k_samples=2, max_new_tokens=3, max_length=32,
                                   reward_learning_rate=1e-3, policy_learning_rate=1e-3, progress=False, seed=5)
        seq_maxent.adamw = adamw
        try:
            result = seq_maxent.train(model, tokenizer, demos, config)
        finally:
            seq_maxent.adamw = make_adamw
        return result.history, digests

    if __name__ == "__main__":
        model_dir, out_path = sys.argv[1], sys.argv[2]
        rank = int(os.environ.get("RANK", "0"))
        dpo_losses, dpo_weights = run_dpo(model_dir)
        orpo_losses, orpo_weights = run_orpo(model_dir)
        iq_losses, iq_weights = run_iq(model_dir)
        maxent_history, maxent_digests = run_maxent(model_dir)
        json.dump({"maxent_history": maxent_history, "maxent_digests": maxent_digests},
                  open(f"{out_path}.rank{rank}.json", "w"))
        if rank == 0:
            world = int(os.environ.get("WORLD_SIZE", "1"))
            json.dump({"world": world, "dpo": dpo_losses, "orpo": orpo_losses, "iq": iq_losses},
                      open(out_path + ".json", "w"))
            save_file({**{"dpo." + k: v for k, v in dpo_weights.items()},
                       **{"orpo." + k: v for k, v in orpo_weights.items()},
                       **{"iq." + k: v for k, v in iq_weights.items()}}, out_path + ".safetensors")
        # leave together and take the process group down before exit: a gloo group left to the interpreter's
        # teardown can abort there ("terminate called without an active exception")
        import torch.distributed as dist
        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.heavy
def test_two_processes_match_one(tmp_path, tokenizer, make_model):
    """One launch of two processes runs all three trainers (interpreter and gloo start-up are the cost); the
    one-process DPO and IQ-Learn runs happen in this process (saves another interpreter start).
    tests/llm/test_loop.py checks the same arithmetic (shards, global means) in-process."""
    from safetensors.torch import load_file

    model_dir = tmp_path / "model"
    make_model(len(tokenizer)).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    script = tmp_path / "run_all.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "ACCELERATE_USE_CPU": "true"}
    # accelerate 1.x: `--cpu --num_processes 2` starts ONE process unless MPI is set up; `--multi_gpu` starts two
    # via torchrun, and ACCELERATE_USE_CPU makes them gloo CPU processes (the script checks WORLD_SIZE == 2)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(free_port())]
    out = tmp_path / "two"
    done = subprocess.run(launch + [str(script), str(model_dir), str(out)], env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, f"two processes failed:\n{done.stderr[-3000:]}"
    two = json.loads(out.with_suffix(".json").read_text())
    assert two["world"] == 2
    weights_two = load_file(out.with_suffix(".safetensors"))

    namespace = {"__name__": "one_process"}
    exec(compile(SCRIPT, str(script), "exec"), namespace)
    one = {"dpo": namespace["run_dpo"](str(model_dir)), "orpo": namespace["run_orpo"](str(model_dir)),
           "iq": namespace["run_iq"](str(model_dir))}
    for name, (losses, weights) in one.items():
        assert len(losses) == 3 and losses[-1] != losses[0], name  # the weights moved between steps
        assert two[name] == pytest.approx(losses, rel=1e-5), name
        for key, value in weights.items():
            torch.testing.assert_close(weights_two[f"{name}.{key}"], value, rtol=1e-4, atol=1e-5,
                                       msg=lambda text: f"{name} {key}: {text}")

    # seq_maxent: both ranks finished, finite history, the DDP replicas equal after every optimiser step. Not
    # compared with one process: each process samples its own prompts in one batched generate, seeded per process
    # (one seed per prompt would need a generate call per prompt), so the samples differ from one process's
    ranks = [json.loads((tmp_path / f"two.rank{r}.json").read_text()) for r in (0, 1)]
    for rank in ranks:
        history = rank["maxent_history"]
        assert [row["step"] for row in history] == [1, 2]
        assert all(math.isfinite(v) for row in history for v in row.values()), history
        assert all("policy/loss" in row for row in history)
    assert ranks[0]["maxent_history"] == ranks[1]["maxent_history"]  # metrics are global sums: the same on both
    digests = ranks[0]["maxent_digests"]
    assert [name for name, _ in digests] == ["reward", "policy"] * 2
    assert ranks[1]["maxent_digests"] == digests
    assert digests[0][1] != digests[2][1] and digests[1][1] != digests[3][1]  # both models moved
