"""Resuming the online trainers (GRPO, RLOO, online DPO through irlhf.llm.group_rollout.run) from a checkpoint: an
interrupted run continued from its step-N (or final) checkpoint ends with the weights and history of the
uninterrupted run (pi_ref is the initial policy, the prompt batches and sampling seeds are those of the steps not
done), metrics.jsonl holds each row once, and a checkpoint that does not fit the run is refused in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from irlhf.core.errors import ValidationError
from irlhf.llm import grpo, online_dpo, rloo
from irlhf.llm.loop import TRAINER_STATE

torch.set_num_threads(1)

PROMPTS = ["hello world", "the film was", "the acting", "i loved", "my day was"]
BASE = dict(batch_size=2, num_generations=3, learning_rate=1e-3, max_new_tokens=6, log_every=1, save_steps=2,
            progress=False, device="cpu")
TRAINERS = {"grpo": (grpo, {}), "rloo": (rloo, {}), "online_dpo": (online_dpo, dict(beta=0.5))}


def letters_reward(prompts, completions):
    """Toy ground truth: lowercase letters and spaces in the completion."""
    return np.array([sum(ch in "abcdefghijklmnopqrstuvwxyz " for ch in c) / 6 for c in completions])


def rows(path) -> list[dict]:
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def same_weights(a, b) -> bool:
    theirs = b.state_dict()
    return all(torch.equal(v, theirs[k]) for k, v in a.state_dict().items())


@pytest.mark.parametrize("name", list(TRAINERS))
def test_a_resumed_run_ends_where_the_uninterrupted_run_does(tokenizer, make_model, tmp_path, name):
    """4 steps in one run vs. 2 steps (step-2 written) resumed from step-2 to 4, evaluating every 2 steps."""
    module, extra = TRAINERS[name]

    def train(steps, out, **kwargs):
        config = module.Config(**BASE, **extra, steps=steps, eval_steps=2)
        return module.train(make_model(len(tokenizer)), tokenizer, PROMPTS, letters_reward, config,
                            output_dir=out, eval_prompts=PROMPTS[:2], **kwargs)

    full = train(4, tmp_path / "full")
    train(2, tmp_path / "cut")
    resumed = train(4, tmp_path / "cut", resume_from=tmp_path / "cut" / "step-2")
    assert same_weights(resumed.model, full.model)
    assert [r["step"] for r in full.history] == [1, 2, 2, 3, 4, 4] and "eval/scores" in full.history[2]
    assert resumed.history == full.history and rows(tmp_path / "cut") == full.history
    state = torch.load(tmp_path / "cut" / "final" / TRAINER_STATE, weights_only=True)
    assert state["step"] == 4 and state["trainer"] == f"irlhf.llm.{name}.Config" and state["optimizer"]["state"]
    assert state["history"] == full.history


def test_resuming_from_final_goes_on_and_scores_the_eval_prompts_at_the_new_end(tokenizer, make_model, tmp_path):
    """final's trainer state holds the training rows only: the after-training eval row is scored at the new end."""
    def train(steps, out, **kwargs):
        config = grpo.Config(**{**BASE, "save_steps": 0}, steps=steps)
        return grpo.train(make_model(len(tokenizer)), tokenizer, PROMPTS, letters_reward, config, output_dir=out,
                          eval_prompts=PROMPTS[:2], **kwargs)

    full = train(3, tmp_path / "full")
    first = train(2, tmp_path / "more")
    assert [r["step"] for r in first.history] == [1, 2, 2]
    more = train(3, tmp_path / "more", resume_from=tmp_path / "more" / "final")
    assert same_weights(more.model, full.model)
    assert [r["step"] for r in more.history] == [1, 2, 3, 3] and more.history == full.history
    assert rows(tmp_path / "more") == full.history


def test_a_lora_run_resumes_its_adapters_against_the_base_model(tokenizer, make_model, tmp_path):
    peft = pytest.importorskip("peft")

    def lora():
        torch.manual_seed(1)  # the same initial adapters each time
        return peft.get_peft_model(make_model(len(tokenizer)), peft.LoraConfig(
            r=4, lora_alpha=8, target_modules=["c_attn"], lora_dropout=0.0, fan_in_fan_out=True,
            init_lora_weights=False))

    config = online_dpo.Config(**BASE, beta=0.5, steps=4)
    full = online_dpo.train(lora(), tokenizer, PROMPTS, letters_reward, config)
    online_dpo.train(lora(), tokenizer, PROMPTS, letters_reward, config.replace(steps=2), output_dir=tmp_path)
    assert (tmp_path / "step-2" / "adapter_model.safetensors").is_file()
    resumed = online_dpo.train(lora(), tokenizer, PROMPTS, letters_reward, config, resume_from=tmp_path / "step-2")
    assert same_weights(resumed.model, full.model) and resumed.history == full.history


@pytest.fixture(scope="module")
def checkpoint(tokenizer, make_model, tmp_path_factory):
    """A GRPO run of 2 steps: its output directory (step-2 and final hold the trainer state)."""
    out = tmp_path_factory.mktemp("grpo")
    grpo.train(make_model(len(tokenizer)), tokenizer, PROMPTS, letters_reward, grpo.Config(**BASE, steps=2),
               output_dir=out)
    return out


@pytest.mark.parametrize("case, message", [
    ("rloo", r"resume_from='.*step-2': a checkpoint of irlhf\.llm\.grpo\.Config; expected one of "
             r"irlhf\.llm\.rloo\.Config$"),
    ("online_dpo", r"a checkpoint of irlhf\.llm\.grpo\.Config; expected one of irlhf\.llm\.online_dpo\.Config$"),
    ("beta", r"trained with beta=0\.04, this run has beta=0\.1; expected the same config \(only steps, "
             r"save_steps, eval_steps, log_every, progress, device may change\)$"),
    ("steps", r"at step 2, beyond this run's 1 steps; expected steps >= 2$"),
])
def test_a_checkpoint_that_does_not_fit_is_refused_in_one_line(tokenizer, make_model, checkpoint, case, message):
    module, config = grpo, grpo.Config(**BASE, steps=4)
    if case in ("rloo", "online_dpo"):
        module = rloo if case == "rloo" else online_dpo
        config = module.Config(**BASE, steps=4)
    elif case == "beta":
        config = config.replace(beta=0.1)
    else:
        config = config.replace(steps=1)
    model = make_model(len(tokenizer))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValidationError, match=message) as caught:
        module.train(model, tokenizer, PROMPTS, letters_reward, config, resume_from=checkpoint / "step-2")
    assert "\n" not in str(caught.value)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # refused before any work


def test_changing_only_the_run_length_logging_and_saving_is_allowed(tokenizer, make_model, checkpoint):
    config = grpo.Config(**{**BASE, "save_steps": 0, "log_every": 2}, steps=3, eval_steps=3)
    result = grpo.train(make_model(len(tokenizer)), tokenizer, PROMPTS, letters_reward, config,
                        resume_from=checkpoint / "step-2")
    assert [r["step"] for r in result.history] == [1, 2, 3]  # without output_dir: the first rows from the state
