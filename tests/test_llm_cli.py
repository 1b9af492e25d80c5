"""``irlhf llm``: each trainer writes a complete run directory from a local model; bad input leaves nothing."""

from __future__ import annotations

import json
import warnings

import pytest

from irlhf import cli
from irlhf.llm.loop import save_checkpoint
from irlhf.llm.tasks import frontier, sentiment


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("llm")
    tokenizer = sentiment.build_tokenizer()
    save_checkpoint(sentiment.make_model(tokenizer, seed=0, n_embd=32), tokenizer, root / "model")
    frontier.label_pairs(["the film was", "this plot was"],
                         [["great .", "awful .", "dull", "fine ."], ["loved it", "hated it", "ok", "superb"]]
                         ).save(root / "pairs.jsonl")
    (root / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in frontier.sft_examples(16, 0)))
    (root / "prompts.txt").write_text("the film was\nthis plot was\n")
    (root / "labels.jsonl").write_text("".join(json.dumps({"prompt": p, "completion": c, "label": ok}) + "\n" for p, c, ok in
                                               [("the film was", " great .", True), ("the film was", " awful .", False),
                                                ("this plot was", " superb", True), ("this plot was", " dull", False)]))
    return root


def run_one(tmp_path, argv):
    out = tmp_path / "out"
    assert cli.main([*argv, "--out", str(out), "--no-progress"]) == 0
    (run,) = list(out.iterdir())
    return run


@pytest.mark.parametrize("argv, metric", [
    (["sft", "--data", "sft.jsonl", "--set", "max_steps=2"], "mean_token_accuracy"),
    (["reward", "--data", "pairs.jsonl", "--set", "max_steps=2", "--set", "batch_size=4"], "accuracy"),
    (["dpo", "--data", "pairs.jsonl", "--set", "max_steps=2", "--set", "batch_size=4", "--lora", "2"],
     "rewards/margins"),
    (["dpo", "--data", "pairs.jsonl", "--set", "max_steps=2", "--set", "batch_size=4", "--loss-type", "ipo"],
     "rewards/margins"),
    (["simpo", "--data", "pairs.jsonl", "--set", "max_steps=2", "--set", "batch_size=4", "--set", "gamma=1.0"],
     "rewards/margins"),
    (["orpo", "--data", "pairs.jsonl", "--set", "max_steps=2", "--set", "batch_size=4", "--lora", "2"],
     "rewards/margins"),
    (["ppo", "--prompts", "prompts.txt", "--reward", "sentiment", "--set", "steps=2", "--set", "batch_size=2",
      "--set", "mini_batch_size=1", "--set", "max_new_tokens=4"], "objective/scores"),
    (["kto", "--data", "labels.jsonl", "--set", "max_steps=2", "--set", "batch_size=4"], "rewards/margins"),
    (["grpo", "--prompts", "prompts.txt", "--reward", "sentiment", "--set", "steps=2", "--set", "num_generations=2",
      "--set", "max_new_tokens=4"], "objective/scores"),
    (["rloo", "--prompts", "prompts.txt", "--reward", "sentiment", "--set", "steps=1", "--set", "max_new_tokens=4"],
     "objective/scores"),
    (["online-dpo", "--prompts", "prompts.txt", "--reward", "sentiment", "--set", "steps=1",
      "--set", "max_new_tokens=4"], "objective/scores"),
])
def test_trainer_writes_a_complete_run(tmp_path, files, argv, metric, capsys):
    argv = [a if not a.endswith((".jsonl", ".txt")) else str(files / a) for a in argv]
    run = run_one(tmp_path, ["llm", *argv, "--model", str(files / "model")])
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "metrics.jsonl", "final", "curves.png", "summary.txt", "report.html"} <= names
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows and metric in rows[-1]
    final = {p.name for p in (run / "final").iterdir()}
    assert any(n.endswith(".safetensors") for n in final) and "tokenizer.json" in final
    config = json.loads((run / "config.json").read_text())
    assert config["job"]["action"] == argv[0] and config["trainer"]["seed"] == 0
    assert f"irlhf llm {argv[0]} ->" in capsys.readouterr().out


@pytest.mark.parametrize("method, metric, extra", [
    ("iq", "sequence_reward", ["--set", "max_steps=2", "--set", "batch_size=4", "--set", "max_length=48"]),
    ("maxent", "ess_fraction", ["--set", "steps=2", "--set", "batch_size=2", "--set", "k_samples=2",
                                "--set", "max_new_tokens=4", "--set", "max_length=48"]),
])
def test_irl_writes_policy_and_reward(tmp_path, files, capsys, method, metric, extra):
    """irlhf llm irl: IQ-Learn writes the policy (its logits are the reward); MaxEnt writes policy and R_phi. Whether
    MaxEnt's importance weights collapse on this untrained model depends on its samples: that warning is
    tests/llm/test_seq_maxent.py's subject, not this one's."""
    argv = ["llm", "irl", "--method", method, "--model", str(files / "model"), "--demos", str(files / "sft.jsonl"),
            *extra]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="step .*: importance weights collapsed", category=UserWarning)
        run = run_one(tmp_path, argv)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows and metric in rows[-1]
    final = run / "final"
    saved = [final] if method == "iq" else [final / "policy", final / "reward_model"]
    for directory in saved:
        assert any(p.suffix == ".safetensors" for p in directory.iterdir()), directory
    config = json.loads((run / "config.json").read_text())
    assert config["job"]["method"] == method and run.name.startswith(f"llm-irl-{method}")
    assert {"curves.png", "report.html", "summary.txt"} <= {p.name for p in run.iterdir()}
    assert f"--method {method}" in (run / "report.html").read_text()
    assert "irlhf llm irl ->" in capsys.readouterr().out


def test_ppo_on_a_saved_reward_model(tmp_path, files):
    reward_run = run_one(tmp_path / "rm", ["llm", "reward", "--model", str(files / "model"), "--data",
                                           str(files / "pairs.jsonl"), "--set", "max_steps=1"])
    run = run_one(tmp_path / "ppo", ["llm", "ppo", "--model", str(files / "model"), "--prompts",
                                     str(files / "prompts.txt"), "--reward-model", str(reward_run / "final"),
                                     "--set", "steps=1", "--set", "batch_size=2", "--set", "mini_batch_size=2",
                                     "--set", "max_new_tokens=4"])
    assert (run / "final").is_dir()


def test_dpo_resumes_from_a_checkpoint_of_an_earlier_run(tmp_path, files, capsys):
    argv = ["llm", "dpo", "--model", str(files / "model"), "--data", str(files / "pairs.jsonl"), "--set", "batch_size=4"]
    first = run_one(tmp_path / "a", [*argv, "--set", "max_steps=1", "--set", "save_steps=1"])
    run = run_one(tmp_path / "b", [*argv, "--set", "max_steps=2", "--set", "save_steps=1",
                                   "--resume", str(first / "step-1")])
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and f"--resume {first / 'step-1'}" in (run / "report.html").read_text()
    out = tmp_path / "c"
    assert cli.main(["llm", "simpo", *argv[2:], "--resume", str(first / "step-1"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "a checkpoint of irlhf.llm.dpo.Config; expected one of irlhf.llm.simpo.Config" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["dpo", "--model", "missing", "--data", "pairs.jsonl"], "no such directory"),
    (["dpo", "--model", "MODEL", "--data", "pairs.jsonl", "--set", "bogus=1"], "unknown field"),
    (["dpo", "--model", "MODEL", "--data", "bad.jsonl"], "missing"),
    (["dpo", "--model", "MODEL", "--data", "pairs.jsonl", "--set", "beta=-1"], "beta"),
    (["dpo", "--model", "MODEL", "--data", "pairs.jsonl", "--loss-type", "ipo", "--set", 'loss_type="hinge"'],
     "give the loss type once"),
    (["simpo", "--model", "MODEL", "--data", "pairs.jsonl", "--set", "gamma=-1"], "gamma"),
    (["orpo", "--model", "MODEL", "--data", "same.jsonl"], "row 2: chosen and rejected are the same text"),
    (["orpo", "--model", "MODEL", "--data", "pairs.jsonl", "--set", "beta=0.1"], "unknown field"),
    (["ppo", "--model", "MODEL", "--prompts", "prompts.txt"], "--reward-model"),
    (["grpo", "--model", "MODEL", "--prompts", "prompts.txt"], "llm grpo: give --reward-model DIR"),
    (["online-dpo", "--model", "MODEL", "--prompts", "prompts.txt", "--reward", "sentiment", "--set",
      "num_iterations=2"], "num_iterations=2"),
    (["kto", "--model", "MODEL", "--data", "badlabel.jsonl"], "label 'yes'"),
    (["kto", "--model", "MODEL", "--data", "same.jsonl"], "row 2: chosen and rejected are the same text"),
    (["sft", "--model", "MODEL", "--data", "nothing.jsonl"], "no such file"),
    (["irl", "--method", "iq", "--model", "MODEL", "--demos", "bad.jsonl"], "expected prompt and completion"),
    (["irl", "--method", "iq", "--model", "MODEL", "--demos", "pairs.jsonl", "--ref", "MODEL"], "--ref"),
    (["irl", "--method", "maxent", "--model", "MODEL", "--demos", "sft.jsonl", "--eval-data", "sft.jsonl"],
     "--eval-data"),
    (["irl", "--method", "maxent", "--model", "MODEL", "--demos", "sft.jsonl", "--set", "k_samples=1"],
     "k_samples"),
    (["irl", "--method", "iq", "--model", "MODEL", "--demos", "empty.jsonl"], "empty"),
])
def test_bad_input_is_one_line_and_no_run_dir(tmp_path, files, capsys, argv, message):
    (files / "bad.jsonl").write_text('{"prompt": "a"}\n')
    (files / "same.jsonl").write_text('{"prompt": "a", "chosen": " b", "rejected": " c"}\n'
                                      '{"prompt": "a", "chosen": " b", "rejected": " b"}\n')
    (files / "empty.jsonl").write_text('{"prompt": "the film was", "completion": ""}\n')
    (files / "badlabel.jsonl").write_text('{"prompt": "a", "completion": " b", "label": "yes"}\n')
    argv = [str(files / "model") if a == "MODEL" else str(files / a) if a.endswith((".jsonl", ".txt")) else a
            for a in argv]
    out = tmp_path / "out"
    assert cli.main(["llm", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("irlhf: error:") and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_sentiment_quick_options_validated(tmp_path, capsys):
    assert cli.main(["llm", "sentiment", "--set", "bogus=1", "--out", str(tmp_path / "o")]) == 2
    assert "unknown field" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_llm_output_is_only_the_summary(tmp_path, files, capfd):
    """No transformers load report (with its ANSI colours), peft / transformers warnings or display-probing
    errors: a reward model's fresh head and LoRA on GPT-2's Conv1D layers are expected, not news."""

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_one(tmp_path / "rm", ["llm", "reward", "--model", str(files / "model"), "--data",
                                  str(files / "pairs.jsonl"), "--set", "max_steps=1", "--set", "batch_size=4"])
        run_one(tmp_path / "dpo", ["llm", "dpo", "--model", str(files / "model"), "--data", str(files / "pairs.jsonl"),
                                   "--set", "max_steps=1", "--set", "batch_size=4", "--lora", "2"])
    captured = capfd.readouterr()
    text = captured.out + captured.err
    assert "\x1b[" not in text and "LOAD REPORT" not in text and "XDG_RUNTIME_DIR" not in text, text
    assert [line for line in captured.out.splitlines() if not line.startswith(("irlhf llm", "model:", "report:"))
            and "logged steps" not in line] == [], captured.out
    assert captured.err == "", captured.err
    assert [str(w.message) for w in caught] == []


def test_dpo_loss_type_choices_equal_the_library_names():
    from irlhf.jobs._common import DPO_LOSS_TYPES
    from irlhf.llm import dpo

    assert DPO_LOSS_TYPES == dpo.LOSS_TYPES


def test_every_llm_trainer_has_its_help_line():
    from irlhf.jobs._common import LLM_TRAINER_HELP, LLM_TRAINERS

    assert tuple(LLM_TRAINER_HELP) == LLM_TRAINERS
