"""``irlhf demos``: collect, inspect and convert demonstration files.

    irlhf demos collect --env CartPole-v1 --episodes 10 --expert scripted --save demos/cp.parquet
    irlhf demos info demos/cp.parquet
    irlhf demos convert demos/cp.parquet demos/cp_dir        # any format to any other, exact

Formats follow the path (``irlhf.data.save_demos`` / ``load_demos``): ``.npz``, ``.parquet``, ``.jsonl``,
or a Hugging Face ``save_to_disk`` directory (a path without a suffix, or an existing directory).
Writes are atomic, and an existing path is only replaced with ``--force``. ``collect`` rolls out
``irlhf.rl.experts.make_expert(env, seed=--seed, kind=--expert)`` with ``collect_demos`` (episode k resets
with seed + k); without ``--save`` it writes ``<out>/<env>-<expert>-<N>ep-seed<seed>.npz`` (``--out``, default
``demos``). These are data-only commands: they write the one file or directory and no run directory; info and
convert refuse --seed and --out, which they would not use.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from irlhf.core.errors import ValidationError
from irlhf.data import load_demos, save_demos
from irlhf.envs.gym import collect_demos
from irlhf.jobs._common import DEMO_SUFFIXES, reject_options
from irlhf.rl.experts import make_expert

SUFFIXES = DEMO_SUFFIXES


def _check_target(path: str, force: bool) -> Path:
    """Reject unknown formats and (without ``force``) existing paths, before any work is done."""
    target = Path(path)
    if not target.is_dir() and target.suffix.lower() not in (*SUFFIXES, ""):
        raise ValidationError(f"path={path!r}: unknown format {target.suffix!r}; expected .npz, .parquet, "
                              ".jsonl or a directory (a path without a suffix)")
    if target.exists() and not force:
        raise ValidationError(f"path={path!r}: already exists; pass --force to replace it")
    return target


def default_path(env: str, expert: str, episodes: int, seed: int, directory: str = "demos") -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{env}-{Path(expert).stem or expert}-{episodes}ep-seed{seed}")
    return str(Path(directory) / f"{name}.npz")


def stats_lines(demos: list[Any]) -> list[str]:
    """Episodes, steps, shapes and dtypes, return statistics, terminal / truncated counts."""
    first = demos[0]
    steps = [len(t) for t in demos]
    lines = [
        f"episodes: {len(demos)}; steps: {sum(steps)} (per episode min {min(steps)}, mean {np.mean(steps):.1f}, "
        f"max {max(steps)})",
        f"obs: shape {tuple(first.obs.shape[1:])}, dtype {first.obs.dtype}; "
        f"acts: shape {tuple(first.acts.shape[1:])}, dtype {first.acts.dtype}",
    ]
    returns = [float(t.rews.sum()) for t in demos if t.rews is not None]
    if returns:
        lines.append(f"return: {np.mean(returns):.2f} +- {np.std(returns):.2f} (min {min(returns):.2f}, "
                     f"max {max(returns):.2f}) over {len(returns)} episodes with rewards")
    else:
        lines.append("return: n/a (no rewards)")
    n_terminal = sum(t.terminal for t in demos)
    lines.append(f"terminal: {n_terminal}; truncated: {len(demos) - n_terminal}")
    return lines


def run_collect(args: argparse.Namespace) -> int:
    if args.save is not None:
        reject_options(args, ("out",), "not used with --save PATH (the file goes to PATH)")
    if isinstance(args.episodes, bool) or not isinstance(args.episodes, int) or args.episodes < 1:
        raise ValidationError(f"episodes={args.episodes!r}: expected an int >= 1")
    path = args.save or default_path(args.env, args.expert, args.episodes, args.seed, args.out)
    target = _check_target(path, args.force)
    expert = make_expert(args.env, seed=args.seed, kind=args.expert)
    demos = []
    episodes = range(args.episodes)
    if not args.no_progress:
        episodes = tqdm(episodes, desc=f"collecting {args.env}", unit="episode", leave=False)
    for k in episodes:
        demos += collect_demos(args.env, expert, n_episodes=1, seed=args.seed + k)
    save_demos(target, demos)
    print("\n".join([f"irlhf demos collect -> {target}", f"env: {args.env}; expert: {args.expert}; "
                     f"reset seeds {args.seed}..{args.seed + args.episodes - 1}", *stats_lines(demos)]))
    return 0


def run_info(args: argparse.Namespace) -> int:
    reject_options(args, ("seed", "out"), "not used by demos info (it only reads PATH)")
    demos = load_demos(args.path)
    print("\n".join([f"{args.path}", *stats_lines(demos)]))
    return 0


def run_convert(args: argparse.Namespace) -> int:
    reject_options(args, ("seed", "out"), "not used by demos convert (it writes OUT, exactly what IN holds)")
    target = _check_target(args.dst, args.force)
    demos = load_demos(args.src)
    save_demos(target, demos)
    print(f"irlhf demos convert: {args.src} -> {target} ({len(demos)} episodes, {sum(len(t) for t in demos)} steps)")
    return 0
