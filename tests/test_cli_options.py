"""The ``irlhf`` command's options: each one given is used, help shows each default once, output stays clean."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import textwrap

import pytest

from irlhf import cli


def _parsers(parser: argparse.ArgumentParser, name: str = "irlhf") -> dict[str, argparse.ArgumentParser]:
    """Every (sub-)command's parser, by its command line."""
    found = {name: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                found.update(_parsers(sub, f"{name} {sub_name}"))
    return found


def _option_entries(help_text: str) -> list[str]:
    """The entries of a help page: each starts on a line indented by two spaces, continuation lines deeper."""
    entries: list[str] = []
    for line in help_text.splitlines():
        if re.match(r"^  \S", line):
            entries.append(line)
        elif entries and line.startswith("   "):
            entries[-1] += " " + line.strip()
        else:
            entries.append("")  # a heading or paragraph ends the entry before it
    return [e for e in entries if e]


def test_help_shows_each_default_once():
    pages = _parsers(cli.build_parser())
    assert {"irlhf irl", "irlhf llm ppo", "irlhf demos collect", "irlhf prefs fit"} <= set(pages)
    for name, parser in pages.items():
        for entry in _option_entries(parser.format_help()):
            assert entry.lower().count("default") <= 1, f"{name}: {entry}"
            assert "(default: None)" not in entry and "(default: False)" not in entry, f"{name}: {entry}"
    irl = " ".join(pages["irlhf irl"].format_help().split())
    assert "(default: objectworld)" in irl and "(default: 16)" in irl  # real defaults are still shown


def test_given_options_are_what_the_user_typed():
    given = cli.given_options(["irl", "gail", "--env=Foo-v0", "--size", "16", "--continuous", "--set", "a=1",
                               "--set", "b=2", "--no-progress"])
    assert given == {"env": "--env Foo-v0", "size": "--size 16", "continuous": "--continuous",
                     "options": "--set a=1 --set b=2", "no_progress": "--no-progress"}
    assert cli.given_options(["expert", "eval", "--episodes", "3"]) == {"eval_episodes": "--episodes 3"}
    assert cli.given_options(["llm", "sentiment", "--seeds", "1", "2"]) == {"seeds": "--seeds 1 2"}
    assert cli.given_options(["demos", "--seed", "3", "collect", "--episodes", "1"]) == {
        "seed": "--seed 3", "episodes": "--episodes 1"}
    assert cli.given_options(["irl"]) == {}


@pytest.fixture
def files(tmp_path):
    (tmp_path / "prefs.jsonl").write_text('{"i": 0, "j": 1, "mu": 1}\n')
    (tmp_path / "demos.npz").write_bytes(b"")
    (tmp_path / "model").mkdir()
    return tmp_path


@pytest.mark.parametrize("argv, shown", [
    (["irl", "maxent", "--env", "Foo-v0"], "--env Foo-v0: not used by irl maxent"),
    (["irl", "deep-maxent", "--eval-episodes", "3", "--expert", "ppo"],
     "--eval-episodes 3, --expert ppo: not used by irl deep-maxent"),
    (["irl", "gail", "--world", "gridworld"], "--world gridworld: not used by irl gail"),
    (["irl", "iq-learn", "--continuous"], "--continuous: not used by irl iq-learn"),
    (["irl", "iq-learn", "--demos", "DIR/demos.npz", "--episodes", "3"], "--episodes 3: not used with --demos"),
    (["bc", "--demos", "DIR/demos.npz", "--episodes", "3"], "--episodes 3: not used with --demos"),
    (["expert", "list", "--algo", "dqn"], "--algo dqn: not used by expert list"),
    (["expert", "list", "--seed", "2"], "--seed 2: not used by expert list"),
    (["expert", "eval", "--force"], "--force: not used by expert eval"),
    (["expert", "train", "--expert", "ppo"], "--expert ppo: not used by expert train"),
    (["prefs", "fit", "--comparisons", "DIR/prefs.jsonl", "--synthetic-comparisons", "10"],
     "--synthetic-comparisons 10: only used with --synthetic"),
    (["prefs", "fit", "--comparisons", "DIR/prefs.jsonl", "--seed", "3"], "--seed 3: only used with --synthetic"),
    (["prefs", "fit", "--synthetic", "5", "--n-items", "4"], "--n-items 4: not used with --synthetic"),
    (["llm", "ppo", "--model", "DIR/model", "--prompts", "DIR/prefs.jsonl", "--reward", "sentiment",
      "--reward-model", "DIR/model"], "--reward-model DIR/model: not used with --reward sentiment"),
    (["llm", "sentiment", "--seeds", "1", "2", "--seed", "3"], "--seed 3: not used with --seeds"),
    (["demos", "--seed", "3", "info", "DIR/demos.npz"], "--seed 3: not used by demos info"),
    (["demos", "--out", "DIR/o", "convert", "DIR/demos.npz", "DIR/x.npz"], "--out DIR/o: not used by demos convert"),
    (["demos", "collect", "--save", "DIR/x.npz", "--out", "DIR/o"], "--out DIR/o: not used with --save"),
])
def test_an_option_the_command_does_not_use_is_an_error(files, capsys, monkeypatch, argv, shown):
    """Options the chosen algorithm or action ignores would hide a mistake: one error line naming them, exit 2."""
    monkeypatch.chdir(files)  # a run directory would land in ./runs
    assert cli.main([a.replace("DIR", str(files)) for a in argv]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("irlhf: error: " + shown.replace("DIR", str(files))), captured.err
    assert captured.out == "" and sorted(p.name for p in files.iterdir()) == ["demos.npz", "model", "prefs.jsonl"]


def test_cli_renders_frames_without_display_noise(tmp_path):
    """Without a display, SDL (pygame, used by gymnasium's rgb_array renderers) prints an XDG_RUNTIME_DIR error
    when it probes for one; the command renders off-screen only, so it must not probe."""
    script = textwrap.dedent("""
        import gymnasium as gym
        from irlhf import cli

        def render(args):
            env = gym.make("CartPole-v1", render_mode="rgb_array")
            env.reset(seed=0)
            print(env.render().shape)

        cli.JOBS += (lambda sub: cli.add_job(sub, "render", render, help="draw one frame"),)
        raise SystemExit(cli.main(["render"]))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "SDL_", "DISPLAY", "WAYLAND"))}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "(400, 600, 3)", proc.stderr
    assert "XDG_RUNTIME_DIR" not in proc.stderr and proc.stderr == "", proc.stderr
