"""Two CPU processes under ``accelerate launch`` (gloo DDP) give the same DPO run as one process with the same global batch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

pytest.importorskip("accelerate", reason="accelerate is not installed (pip install 'irlhf[llm]')")

SCRIPT = textwrap.dedent("""
    import json, os, sys
    import torch
    torch.set_num_threads(1)
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, GPT2LMHeadModel
    from irlhf.data.text import TextPairs
    from irlhf.llm import dpo

    def run(model_dir):
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = GPT2LMHeadModel.from_pretrained(model_dir)
        prompts = ["the film was", "the plot was", "the acting was"]
        good = [" great", " great and i loved the music!", " loved", " great greatness"]
        bad = [" dull", " awful", " dull and awful", " dullness"]
        data = TextPairs(tuple(prompts[k % 3] for k in range(20)), tuple(good[k % 4] for k in range(20)),
                         tuple(bad[(k + 1) % 4] for k in range(20)))
        # 20 rows, global batch 8: steps of 8, 8, 4 rows (the last one split unevenly across processes is fine too)
        config = dpo.Config(learning_rate=1e-3, batch_size=8, max_steps=3, max_length=32, log_every=1,
                            progress=False, beta=0.5, seed=3)
        result = dpo.train(model, tokenizer, data, config)
        weights = {k: v.detach().clone() for k, v in result.model.named_parameters()}
        return [row["loss"] for row in result.history], weights

    if __name__ == "__main__":
        model_dir, out_path = sys.argv[1], sys.argv[2]
        losses, weights = run(model_dir)
        if int(os.environ.get("RANK", "0")) == 0:
            world = int(os.environ.get("WORLD_SIZE", "1"))
            json.dump({"world": world, "losses": losses}, open(out_path + ".json", "w"))
            save_file(weights, out_path + ".safetensors")
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one(tmp_path, tokenizer, make_model):
    """The one-process run happens in this process (saves a second interpreter start); the two run under
    ``accelerate launch``. tests/llm/test_loop.py checks the same arithmetic (shards, global means) in-process."""
    from safetensors.torch import load_file

    model_dir = tmp_path / "model"
    make_model(len(tokenizer)).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    script = tmp_path / "run_dpo.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "ACCELERATE_USE_CPU": "true"}
    # accelerate 1.x: `--cpu --num_processes 2` starts ONE process unless MPI is set up; `--multi_gpu` starts two
    # via torchrun, and ACCELERATE_USE_CPU makes them gloo CPU processes (the script checks WORLD_SIZE == 2)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(free_port())]
    done = subprocess.run(launch + [str(script), str(model_dir), str(tmp_path / "two")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"two processes failed:\n{done.stderr[-3000:]}"
    two = json.loads((tmp_path / "two.json").read_text())
    assert two["world"] == 2

    namespace = {"__name__": "one_process"}
    exec(compile(SCRIPT, str(script), "exec"), namespace)
    one, weights_one = namespace["run"](str(model_dir))
    assert len(one) == 3 and one[-1] != one[0]  # the weights moved between steps
    assert two["losses"] == pytest.approx(one, rel=1e-5)
    weights_two = load_file(tmp_path / "two.safetensors")
    for key, value in weights_one.items():
        torch.testing.assert_close(weights_two[key], value, rtol=1e-4, atol=1e-5)
