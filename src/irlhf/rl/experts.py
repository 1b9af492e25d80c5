"""Experts for gymnasium environments: ``make_expert`` (scripted, cached SB3-trained, or a policy file) and
the disk cache of experts trained with Stable-Baselines3.

    expert = make_expert("CartPole-v1", kind="scripted")        # or "ppo" / "dqn" / "sac" / a file path

    policy, info = train_expert("CartPole-v1", "ppo", seed=0)   # trains once (zoo defaults), then reuses
    policy = load_expert("CartPole-v1", "ppo", seed=0)          # ValidationError if not trained yet
    list_experts()                                              # the sidecars of every cached expert

Layout: ``<cache_dir()>/experts/<env_id>/<algo>-seed<seed>.zip`` (the SB3 model) and a sidecar
``<algo>-seed<seed>.json`` (env_id, algo, seed, timesteps, hyperparameters, evaluation mean / std
return, training episodes for a learning curve, versions, creation time). ``cache_dir()`` is
``$IRLHF_CACHE_DIR``, else ``$XDG_CACHE_HOME/irlhf``, else ``~/.cache/irlhf``.

Both files are written to temp names in the same directory and renamed into place, the model first, the
sidecar last: an entry counts as cached only when its sidecar exists, so an interrupted training or save
never leaves a half-written entry (at worst a complete model without a sidecar, which is retrained).

Long runs checkpoint: every ``checkpoint_every`` environment steps ``train_expert`` writes
``<algo>-seed<seed>.checkpoints/step-<n>/`` (model.zip, replay_buffer.pkl for DQN / SAC, state.json last, then
the older checkpoints removed), and a later call for the same entry and hyperparameters resumes from the
newest complete one; the checkpoints go when the expert is saved. A resumed run is not bit-identical to an
uninterrupted one (the episode in progress is dropped and the environments reset).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium
import stable_baselines3
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

from irlhf import __version__
from irlhf.core.errors import ValidationError, describe
from irlhf.core.io import atomic_open, atomic_write_text
from irlhf.core.seeding import as_generator
from irlhf.envs.gym import SCRIPTED_EXPERTS, Policy, evaluate, make_env
from irlhf.nn.policies import load_policy
from irlhf.rl.sb3 import ALGO_CLASSES, SB3Policy, advance, hyperparams, make_model, one_thread, timestep_bar

ALGOS = ("ppo", "dqn", "sac")
CHECKPOINT_EVERY = 50_000  # environment steps between checkpoints of train_expert (0: none)


def cache_dir() -> Path:
    """``$IRLHF_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/irlhf``, else ``~/.cache/irlhf``."""
    if os.environ.get("IRLHF_CACHE_DIR"):
        return Path(os.environ["IRLHF_CACHE_DIR"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "irlhf"
    return Path.home() / ".cache" / "irlhf"


def _check(env_id: Any, algo: Any, seed: Any) -> tuple[str, str, int]:
    if not isinstance(env_id, str) or not env_id or "/" in env_id or env_id.startswith("."):
        raise ValidationError(f"env_id={describe(env_id)}: expected a gymnasium environment id (e.g. CartPole-v1)")
    if not isinstance(algo, str) or algo.lower() not in ALGOS:
        raise ValidationError(f"algo={describe(algo)}: unknown algorithm; expected one of {list(ALGOS)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValidationError(f"seed={describe(seed)}: expected a non-negative int")
    return env_id, algo.lower(), seed


def expert_path(env_id: str, algo: str, seed: int = 0) -> Path:
    """Path of the cached model ``<cache>/experts/<env_id>/<algo>-seed<seed>.zip`` (may not exist)."""
    env_id, algo, seed = _check(env_id, algo, seed)
    return cache_dir() / "experts" / env_id / f"{algo}-seed{seed}.zip"


def train_command(env_id: str, algo: str, seed: int = 0) -> str:
    return f"irlhf expert train --env {env_id} --algo {algo} --seed {seed}"


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _versions() -> dict[str, str]:
    return {"stable_baselines3": stable_baselines3.__version__, "gymnasium": gymnasium.__version__,
            "torch": torch.__version__, "irlhf": __version__}


def _algo_from_zip(path: Path) -> str | None:
    """Guess the algorithm from the policy class module in the zip's ``data`` entry (None if unknown)."""
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
        module = str(data.get("policy_class", {}).get("__module__", ""))
    except Exception:
        return None
    for algo in ("dqn", "sac"):
        if f".{algo}." in module:
            return algo
    return "ppo" if "common.policies" in module or ".ppo." in module else None


def load_model_file(path: str | os.PathLike[str], algo: str | None = None, env_id: str | None = None) -> Any:
    """An ``SB3Policy`` from an SB3 ``.zip``. The algorithm is ``algo``, else the sidecar ``.json``'s, else
    guessed from the file and then each of PPO, DQN, SAC tried. A missing or unreadable file, or (with
    ``env_id``) spaces that do not fit the environment, raise ``ValidationError`` naming the path."""

    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"path={str(path)!r}: no such file; expected an SB3 model .zip")
    if algo is None:
        sidecar = _read_sidecar(path.with_suffix(".json")) or {}
        algo = sidecar.get("algo") if sidecar.get("algo") in ALGO_CLASSES else None
    if algo is not None:
        order = [algo]
    else:
        guess = _algo_from_zip(path)
        order = ([guess] if guess else []) + [a for a in ("ppo", "dqn", "sac") if a != guess]
    errors = []
    for name in order:
        try:
            model = ALGO_CLASSES[name].load(str(path), device="cpu")
            break
        except Exception as exc:  # zipfile / pickle / torch errors of a corrupt or foreign file
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
    else:
        raise ValidationError(f"path={str(path)!r}: not a loadable SB3 model ({'; '.join(errors)[:300]}); "
                              "the file may be corrupt: delete it and train again")
    policy = SB3Policy(model, algo=name)
    if env_id is not None:
        _check_fits(policy, env_id, path)
    return policy


def _check_fits(policy: Any, env_id: str, path: Path) -> None:

    env = make_env(env_id)
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    same_obs = tuple(policy.observation_space.shape) == tuple(obs_space.shape)
    same_act = type(policy.action_space) is type(act_space) and (
        tuple(policy.action_space.shape) == tuple(act_space.shape)
        and getattr(policy.action_space, "n", None) == getattr(act_space, "n", None))
    if not (same_obs and same_act):
        raise ValidationError(
            f"path={str(path)!r}: model spaces {policy.observation_space} -> {policy.action_space} do not fit "
            f"env={env_id!r} ({obs_space} -> {act_space})")


def load_expert(env_id: str, algo: str, seed: int = 0) -> Any:
    """The cached expert as an ``SB3Policy``; not cached -> ValidationError with the command to train it."""
    path = expert_path(env_id, algo, seed)
    if not path.is_file():
        raise ValidationError(
            f"expert {algo}/seed {seed} for {env_id}: not in the cache ({path}); train it with "
            f"`{train_command(env_id, algo.lower(), seed)}`")
    return load_model_file(path, algo=algo.lower(), env_id=env_id)


def list_experts() -> list[dict[str, Any]]:
    """The sidecars of every cached expert (with ``path`` added), sorted by env, algo, seed."""
    root = cache_dir() / "experts"
    found = []
    for sidecar in sorted(root.glob("*/*.json")) if root.is_dir() else []:
        data = _read_sidecar(sidecar)
        if data is None or not sidecar.with_suffix(".zip").is_file():
            continue
        data["path"] = str(sidecar.with_suffix(".zip"))
        found.append(data)
    return sorted(found, key=lambda d: (str(d.get("env_id")), str(d.get("algo")), int(d.get("seed", 0))))


def checkpoint_dir(env_id: str, algo: str, seed: int = 0) -> Path:
    """Where ``train_expert`` keeps the checkpoints of an unfinished (env_id, algo, seed) run."""
    return expert_path(env_id, algo, seed).with_suffix(".checkpoints")


def _hyperparameters_key(params: dict[str, Any]) -> str:
    """The hyperparameters as a comparable string (n_timesteps left out: a longer run may resume a shorter)."""
    return json.dumps({k: v for k, v in params.items() if k != "n_timesteps"}, sort_keys=True, default=str)


def _save_checkpoint(root: Path, model: Any, state: dict[str, Any]) -> None:
    """A complete checkpoint in ``root/step-<n>/`` (state.json written last marks it complete), then the
    older ones removed: a crash mid-save leaves the previous checkpoint whole."""
    step = root / f"step-{int(model.num_timesteps):012d}"
    step.mkdir(parents=True, exist_ok=True)
    with atomic_open(step / "model.zip", "wb") as handle:
        model.save(handle)
    if getattr(model, "replay_buffer", None) is not None:  # off-policy: the buffer is most of what was learned
        with atomic_open(step / "replay_buffer.pkl", "wb") as handle:
            model.save_replay_buffer(handle)
    atomic_write_text(step / "state.json", json.dumps(state, sort_keys=True, default=str) + "\n")
    for old in root.glob("step-*"):
        if old != step:
            shutil.rmtree(old, ignore_errors=True)


def _latest_checkpoint(root: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest complete checkpoint under ``root`` and its state, or None."""
    for step in sorted(root.glob("step-*"), reverse=True) if root.is_dir() else []:
        state = _read_sidecar(step / "state.json")
        if state is not None and (step / "model.zip").is_file():
            return step, state
    return None


def _load_checkpoint(step: Path, state: dict[str, Any], algo: str, env_id: str, seed: int, n_envs: int) -> Any:
    """The checkpoint's SB3 model on fresh environments (reset seeds moved on by the steps done)."""
    done = int(state["num_timesteps"])
    venv = make_vec_env(env_id, n_envs=n_envs, seed=seed + done)
    try:
        model = ALGO_CLASSES[algo].load(str(step / "model.zip"), env=venv, device="cpu" if algo == "ppo" else "auto")
        if (step / "replay_buffer.pkl").is_file():
            model.load_replay_buffer(str(step / "replay_buffer.pkl"))
    except Exception as exc:  # zip / pickle / torch errors of a damaged checkpoint
        venv.close()
        raise ValidationError(f"checkpoint {str(step)!r}: not loadable ({type(exc).__name__}: {exc}); delete it "
                              "or pass resume=False (--no-resume) to start over") from None
    return model


def list_checkpoints() -> list[dict[str, Any]]:
    """The unfinished runs in the cache: the newest complete checkpoint's state of each (env_id, algo, seed,
    num_timesteps, target_timesteps, train_seconds, ...) plus ``path`` and ``resume``, the command that continues it."""
    root = cache_dir() / "experts"
    found = []
    for run in sorted(root.glob("*/*.checkpoints")) if root.is_dir() else []:
        latest = _latest_checkpoint(run)
        if latest is None:
            continue
        step, state = latest
        state = {k: v for k, v in state.items() if k != "training_episodes"}
        command = train_command(state["env_id"], state["algo"], int(state["seed"]))
        if state.get("target_timesteps") is not None:
            command += f" --timesteps {state['target_timesteps']}"
        if run.with_suffix(".zip").is_file():  # a finished entry is there too: only --force trains on
            command += " --force"
        found.append({**state, "path": str(step), "resume": command})
    return found


def _callback(total: int, progress: bool, desc: str, *, initial: int = 0,
              episodes: list[dict[str, float]] | None = None, checkpoint_every: int = 0,
              save: Callable[[Any, list[dict[str, float]]], None] | None = None) -> Any:
    """An SB3 callback recording finished episodes (Monitor infos), updating a tqdm bar, and calling
    ``save(model, episodes)`` at the first rollout end past every ``checkpoint_every`` steps (0: never)."""

    class EpisodeRecorder(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.episodes: list[dict[str, float]] = list(episodes or [])
            self.bar = None
            self.next_checkpoint = self._after(initial)

        @staticmethod
        def _after(steps: int) -> int:
            """The first multiple of checkpoint_every past ``steps`` (0 without checkpoints)."""
            return (steps // checkpoint_every + 1) * checkpoint_every if checkpoint_every else 0

        def _on_training_start(self) -> None:
            if progress:
                self.bar = timestep_bar(self.model, total, desc=desc, dynamic_ncols=True, initial=initial)

        def _on_step(self) -> bool:
            for info in self.locals.get("infos", []):
                episode = info.get("episode")
                if episode is not None:
                    self.episodes.append({"timestep": int(self.num_timesteps), "return": float(episode["r"]),
                                          "length": int(episode["l"])})
            if self.bar is not None:
                advance(self.bar, self.num_timesteps)
                if self.episodes:
                    recent = [e["return"] for e in self.episodes[-20:]]
                    self.bar.set_postfix_str(f"return {sum(recent) / len(recent):.1f}", refresh=False)
            return True

        def _on_rollout_end(self) -> None:  # the rollout's steps are in the replay buffer by now
            if checkpoint_every and self.next_checkpoint <= self.num_timesteps < total:
                save(self.model, self.episodes)
                self.next_checkpoint = self._after(self.num_timesteps)

        def _on_training_end(self) -> None:
            if self.bar is not None:
                self.bar.close()

    return EpisodeRecorder()


def train_expert(env_id: str, algo: str = "ppo", seed: int = 0, timesteps: int | None = None, *,
                 force: bool = False, progress: bool = False, eval_episodes: int = 20,
                 checkpoint_every: int = CHECKPOINT_EVERY, resume: bool = True,
                 **overrides: Any) -> tuple[Any, dict[str, Any]]:
    """Train (or reuse) the expert for (env_id, algo, seed); returns ``(SB3Policy, info)``.

    Without ``force``, a cached entry is returned as is (``info["cached"]`` True; ``info["note"]`` says so
    when ``timesteps`` differs from the cached run's). Otherwise: ``irlhf.rl.sb3.make_model`` with the zoo
    defaults (``overrides`` on top), ``timesteps`` (default: the defaults' ``n_timesteps``) of training,
    evaluation with ``irlhf.envs.gym.evaluate`` over ``eval_episodes`` episodes (reset seeds 0..), and an
    atomic save of the model and sidecar. ``info`` is the sidecar plus ``path`` and ``cached``.

    Every ``checkpoint_every`` environment steps (0: never) the run is checkpointed (``checkpoint_dir``); with
    ``resume`` an unfinished run of the same hyperparameters continues from its newest checkpoint (steps,
    optimiser and replay buffer, training seconds and episodes), and ``info["resumed_from"]`` gives the step;
    ``resume=False`` deletes the checkpoints and starts over. Checkpoints of other hyperparameters raise
    ``ValidationError``. ``force`` bypasses the finished cache only, not the checkpoints.
    """
    env_id, algo, seed = _check(env_id, algo, seed)
    if timesteps is not None and (isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1):
        raise ValidationError(f"timesteps={describe(timesteps)}: expected an int >= 1 (or None for the default)")
    if isinstance(eval_episodes, bool) or not isinstance(eval_episodes, int) or eval_episodes < 1:
        raise ValidationError(f"eval_episodes={describe(eval_episodes)}: expected an int >= 1")
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every < 0:
        raise ValidationError(f"checkpoint_every={describe(checkpoint_every)}: expected an int >= 0 (0: none)")
    path = expert_path(env_id, algo, seed)
    sidecar_path = path.with_suffix(".json")
    if not force and path.is_file() and sidecar_path.is_file():
        info = _read_sidecar(sidecar_path)
        if info is not None:
            policy = load_model_file(path, algo=algo, env_id=env_id)
            info.update(path=str(path), cached=True)
            if timesteps is not None and info.get("timesteps") != timesteps:
                info["note"] = (f"cached expert was trained for {info.get('timesteps')} timesteps, not {timesteps}; "
                                "pass force to retrain")
            return policy, info

    params = hyperparams(env_id, algo, **overrides)
    if timesteps is not None:
        params["n_timesteps"] = timesteps
    total = int(params["n_timesteps"])
    model_kwargs = {k: v for k, v in params.items() if k != "n_timesteps"}
    root, key = checkpoint_dir(env_id, algo, seed), _hyperparameters_key(params)
    found = _latest_checkpoint(root) if resume else None
    if not resume:
        shutil.rmtree(root, ignore_errors=True)
    elif found is not None and found[1].get("hyperparameters_key") != key:
        raise ValidationError(f"checkpoint {str(found[0])!r} was trained with other hyperparameters "
                              f"({found[1].get('hyperparameters_key')}); pass resume=False (--no-resume) to "
                              "start over, or delete it")
    if found is not None:
        model = _load_checkpoint(found[0], found[1], algo, env_id, seed, int(params["n_envs"]))
        done, earlier_seconds, episodes = int(model.num_timesteps), float(found[1]["train_seconds"]), \
            list(found[1]["training_episodes"])
    else:
        model = make_model(algo, env_id, seed=seed, **model_kwargs)
        done, earlier_seconds, episodes = 0, 0.0, []
    t0 = time.perf_counter()

    def save(current: Any, so_far: list[dict[str, float]]) -> None:
        _save_checkpoint(root, current, {
            "env_id": env_id, "algo": algo, "seed": seed, "num_timesteps": int(current.num_timesteps),
            "target_timesteps": total,
            "hyperparameters_key": key, "train_seconds": earlier_seconds + time.perf_counter() - t0,
            "training_episodes": so_far, "versions": _versions()})

    recorder = _callback(total, progress, f"{algo} {env_id}", initial=min(done, total), episodes=episodes,
                         checkpoint_every=checkpoint_every, save=save)
    try:
        with one_thread():  # small MLPs: one torch thread is faster, and far faster on a busy machine
            if done < total:
                model.learn(total_timesteps=total - done, callback=recorder, reset_num_timesteps=found is None)
    finally:
        model.get_env().close()
    train_seconds = earlier_seconds + time.perf_counter() - t0
    policy = SB3Policy(model, algo=algo)
    mean, std = evaluate(env_id, policy, n_episodes=eval_episodes, seed=0)
    info: dict[str, Any] = {
        "env_id": env_id, "algo": algo, "seed": seed, "timesteps": total,
        "resumed_from": done if found is not None else None,
        "trained_timesteps": int(model.num_timesteps), "hyperparameters": params,
        "eval_return_mean": mean, "eval_return_std": std, "eval_episodes": eval_episodes,
        "train_seconds": train_seconds, "versions": _versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "training_episodes": recorder.episodes,
    }
    # The old sidecar goes first, then the model, the new sidecar last: the sidecar marks a complete entry.
    sidecar_path.unlink(missing_ok=True)
    with atomic_open(path, "wb") as handle:
        model.save(handle)
    atomic_write_text(sidecar_path, json.dumps(info, indent=2, sort_keys=True, default=str) + "\n")
    shutil.rmtree(root, ignore_errors=True)
    info.update(path=str(path), cached=False)
    return policy, info


def make_expert(env_id: str, seed: int = 0, kind: str = "scripted") -> Policy:
    """Return the expert for ``env_id``: a callable, batch of observations -> batch of actions.

    kind:

    - "scripted": the hand-written controllers of ``SCRIPTED_EXPERTS``, with their measured returns;
      deterministic, so ``seed`` is validated but changes nothing.
    - "ppo", "dqn", "sac": the expert trained with Stable-Baselines3 and cached on disk
      (this module; train it with ``irlhf expert train --env ENV --algo ALGO --seed SEED``);
      ``seed`` selects the cached seed. Not cached -> ``ValidationError`` naming that command.
    - a path ending in ".zip": an SB3 model file (the algorithm read from a sidecar ``.json`` beside it
      when present, else PPO, DQN and SAC loaders tried); ".safetensors": an irlhf policy
      (``irlhf.nn.policies.load_policy``). Its spaces must fit ``env_id``.

    Unknown ids or kinds raise ``ValidationError``.
    """
    as_generator(seed)  # validates the seed
    if isinstance(kind, str) and kind in ("ppo", "dqn", "sac"):
        return load_expert(env_id, kind, seed)
    if isinstance(kind, str) and kind.endswith(".zip"):
        make_env(env_id).close()  # unknown id -> ValidationError
        return load_model_file(kind, env_id=env_id)
    if isinstance(kind, str) and kind.endswith(".safetensors"):
        env = make_env(env_id)
        policy = load_policy(kind)
        obs_space, act_space = env.observation_space, env.action_space
        env.close()
        if policy.observation_space.shape != obs_space.shape or type(policy.action_space) is not type(act_space) \
                or policy.action_space.shape != act_space.shape \
                or getattr(policy.action_space, "n", None) != getattr(act_space, "n", None):
            raise ValidationError(f"kind={kind!r}: policy spaces {policy.observation_space} -> "
                                  f"{policy.action_space} do not fit env_id={env_id!r} ({obs_space} -> {act_space})")
        return policy
    if kind != "scripted":
        raise ValidationError(f"kind={describe(kind)}: unknown expert kind; expected 'scripted', 'ppo', 'dqn', "
                              "'sac', or a path ending in .zip (SB3 model) or .safetensors (irlhf policy)")
    if not isinstance(env_id, str) or env_id not in SCRIPTED_EXPERTS:
        raise ValidationError(
            f"env_id={describe(env_id)}: no expert for this environment; "
            f"expected one of {sorted(SCRIPTED_EXPERTS)}"
        )
    return SCRIPTED_EXPERTS[env_id]
