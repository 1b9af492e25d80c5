"""Resuming the offline preference trainers (DPO, ORPO through irlhf.llm.pairwise; KTO) from a checkpoint
(irlhf.llm.loop.read_resume, Resume, MetricsLog): an interrupted run continued from its step-N checkpoint ends with
the weights and history of the uninterrupted run, metrics.jsonl holds each step once, a LoRA run resumes its
adapters, and a checkpoint that does not fit the run is refused with a one-line message."""

from __future__ import annotations

import json

import pytest
import torch

from irlhf.core.errors import ValidationError
from irlhf.data.text import TextLabels, TextPairs
from irlhf.llm import dpo, kto, orpo
from irlhf.llm.loop import TRAINER_STATE, save_checkpoint

torch.set_num_threads(1)

BASE = dict(learning_rate=1e-3, batch_size=4, epochs=1, max_length=24, log_every=1, progress=False, device="cpu",
            save_steps=2)


def pairs(n: int = 16) -> TextPairs:
    prompts = ["the film was", "the plot was", "the acting was", "the music was"]
    good, bad = [" great", " great and i loved the music!", " loved"], [" dull", " awful", " dull and awful"]
    return TextPairs(tuple(prompts[k % 4] for k in range(n)), tuple(good[k % 3] for k in range(n)),
                     tuple(bad[(k + 1) % 3] for k in range(n)))


def labels(n: int = 16) -> TextLabels:
    prompts = ["my day was", "the food was", "the trip was", "the show was"]
    good, bad = [" lovely", " lovely and bright", " a joy"], [" grim", " grim and cold", " bleak bleak"]
    return TextLabels(tuple(prompts[k % 4] for k in range(n)),
                      tuple((good if k % 2 == 0 else bad)[(k // 2) % 3] for k in range(n)),
                      tuple(k % 2 == 0 for k in range(n)))


TRAINERS = {  # train, Config, data, extra Config fields
    "dpo": (dpo.train, dpo.Config, pairs, dict(beta=0.5)),
    "orpo": (orpo.train, orpo.Config, pairs, dict(lam=0.2)),
    "kto": (kto.train, kto.Config, labels, dict(beta=0.5)),
}


def rows(path) -> list[dict]:
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name, cut", [("dpo", 2), ("kto", 2), ("orpo", 3)])
def test_a_resumed_run_ends_where_the_uninterrupted_run_does(tokenizer, make_model, tmp_path, name, cut):
    """4 steps in one run vs. a run stopped after ``cut`` steps (its step-2 checkpoint written; with cut = 3 the
    step-3 row is already in metrics.jsonl, as when a run is killed between checkpoints) resumed from step-2."""
    train, config_class, data, extra = TRAINERS[name]

    def config(**changes):
        return config_class(**{**BASE, **extra, **changes})

    full = train(make_model(len(tokenizer)), tokenizer, data(), config(max_steps=4), output_dir=tmp_path / "full")
    train(make_model(len(tokenizer)), tokenizer, data(), config(max_steps=cut), output_dir=tmp_path / "cut")
    assert [r["step"] for r in rows(tmp_path / "cut")] == list(range(1, cut + 1))
    resumed = train(make_model(len(tokenizer)), tokenizer, data(), config(max_steps=4), output_dir=tmp_path / "cut",
                    resume_from=tmp_path / "cut" / "step-2")
    assert resumed.steps == 4
    expected = weights(full.model)
    assert all(torch.equal(v, expected[k]) for k, v in weights(resumed.model).items())
    assert resumed.history[2:] == full.history[2:] and resumed.history == full.history
    assert [r["step"] for r in rows(tmp_path / "cut")] == [1, 2, 3, 4] and rows(tmp_path / "cut") == full.history
    state = torch.load(tmp_path / "cut" / "final" / TRAINER_STATE, weights_only=True)
    assert state["step"] == 4 and state["trainer"] == f"irlhf.llm.{name}.Config" and state["optimizer"]["state"]


def test_final_stays_loadable_and_a_resumed_run_can_go_on_from_it(tokenizer, make_model, tmp_path):
    from transformers import GPT2LMHeadModel

    config = dpo.Config(**BASE, beta=0.5, max_steps=2)
    first = dpo.train(make_model(len(tokenizer)), tokenizer, pairs(), config, output_dir=tmp_path,
                      eval_data=pairs(4))
    loaded = GPT2LMHeadModel.from_pretrained(tmp_path / "final")
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in first.model.state_dict().items())
    # final's state holds the training rows only: the eval row is scored again at the new end
    more = dpo.train(make_model(len(tokenizer)), tokenizer, pairs(), config.replace(max_steps=3),
                     output_dir=tmp_path, eval_data=pairs(4), resume_from=tmp_path / "final")
    assert [r["step"] for r in rows(tmp_path)] == [1, 2, 3, 3] and "eval/loss" in rows(tmp_path)[-1]
    assert more.history[:2] == first.history[:2] and more.steps == 3


def test_a_lora_run_resumes_its_adapters(tokenizer, make_model, tmp_path):
    peft = pytest.importorskip("peft")

    def lora():
        torch.manual_seed(1)  # the same initial adapters each time
        return peft.get_peft_model(make_model(len(tokenizer)), peft.LoraConfig(
            r=4, lora_alpha=8, target_modules=["c_attn"], lora_dropout=0.0, fan_in_fan_out=True,
            init_lora_weights=False))

    config = dpo.Config(**BASE, beta=0.5, max_steps=4)
    full = dpo.train(lora(), tokenizer, pairs(8), config)
    dpo.train(lora(), tokenizer, pairs(8), config.replace(max_steps=2), output_dir=tmp_path)
    assert (tmp_path / "step-2" / "adapter_model.safetensors").is_file()
    resumed = dpo.train(lora(), tokenizer, pairs(8), config, resume_from=tmp_path / "step-2")
    expected = weights(full.model)
    assert all(torch.equal(v, expected[k]) for k, v in weights(resumed.model).items())
    assert resumed.history == full.history  # without output_dir too: the first rows come from the checkpoint
    with pytest.raises(ValidationError, match=r"no model\.safetensors; expected a checkpoint of a full \(not peft"):
        dpo.train(make_model(len(tokenizer)), tokenizer, pairs(8), config, resume_from=tmp_path / "step-2")


@pytest.fixture(scope="module")
def checkpoint(tokenizer, make_model, tmp_path_factory):
    """A DPO run of 2 steps (beta 0.5): its output directory (step-2 and final hold the trainer state)."""
    out = tmp_path_factory.mktemp("dpo")
    dpo.train(make_model(len(tokenizer)), tokenizer, pairs(8), dpo.Config(**BASE, beta=0.5, max_steps=2),
              output_dir=out)
    return out


@pytest.mark.parametrize("case, message", [
    ("missing", r"resume_from='.*nowhere': no such directory; expected a step-N or final checkpoint directory"),
    ("stateless", r"resume_from='.*stateless': no trainer_state\.pt; expected a checkpoint a trainer wrote"),
    ("orpo", r"a checkpoint of irlhf\.llm\.dpo\.Config; expected one of irlhf\.llm\.orpo\.Config"),
    ("beta", r"trained with beta=0\.5, this run has beta=0\.3; expected the same config \(only max_steps, epochs, "
             r"save_steps, log_every, progress, device may change\)"),
    ("steps", r"at step 2, beyond this run's 1 steps; expected max_steps / epochs that give at least that many"),
    ("architecture", r"GPT2LMHeadModel: size mismatch for transformer\.wte\.weight: .*torch\.Size\(\[308, 32\]\)\.; "
                     r"expected a checkpoint of this model's architecture"),
], ids=["missing", "stateless", "orpo", "beta", "steps", "architecture"])
def test_a_checkpoint_that_does_not_fit_is_refused_in_one_line(tokenizer, make_model, checkpoint, case, message):
    model = make_model(len(tokenizer))
    config = dpo.Config(**BASE, beta=0.5, max_steps=4)
    train, path = dpo.train, checkpoint / "step-2"
    if case == "missing":
        path = checkpoint / "nowhere"
    elif case == "stateless":
        path = save_checkpoint(model, tokenizer, checkpoint / "stateless")  # weights only, as before resume
    elif case == "orpo":
        train, config = orpo.train, orpo.Config(**BASE, max_steps=4)
    elif case == "beta":
        config = config.replace(beta=0.3)
    elif case == "steps":
        config = config.replace(max_steps=1)
    else:
        model = make_model(len(tokenizer) + 8)  # a wider vocabulary: the weights do not fit
    with pytest.raises(ValidationError, match=message) as caught:
        train(model, tokenizer, pairs(8), config, resume_from=path)
    assert "\n" not in str(caught.value)


def test_changing_only_the_run_length_logging_and_device_is_allowed(tokenizer, make_model, checkpoint):
    config = dpo.Config(**{**BASE, "save_steps": 0, "log_every": 3, "epochs": 2}, beta=0.5)
    result = dpo.train(make_model(len(tokenizer)), tokenizer, pairs(8), config, resume_from=checkpoint / "step-2")
    assert result.steps == 4 and [r["step"] for r in result.history] == [1, 2, 3, 4]
