"""imitation's behaviour cloning on demonstrations saved by irlhf, for ``benchmarks/bc_vs_imitation.py``.

Run with the interpreter of the dedicated venv (see setup_imitation_venv.sh), never with the project's
own environment; irlhf is not imported here (the demonstrations are read with plain numpy)::

    benchmarks/.venv-imitation/bin/python benchmarks/imitation_bc_baseline.py --jobs jobs.json

``jobs.json``::

    {"hidden_sizes": [32, 32], "batch_size": 32, "epochs": 50, "lr": 1e-3, "ent_weight": 1e-3,
     "l2_weight": 0.0, "threads": 1,
     "jobs": [{"npz": "demos.npz", "n_actions": 2, "seed": 0, "out": "weights.npz"}, ...]}

Each ``npz`` is an irlhf trajectories file (``irlhf.data.io.save_trajectories``: concatenated ``obs``
(sum(T) + n_traj rows), ``acts``, ``rews``, per-trajectory ``lengths`` and ``terminal``). For each job:
``torch.manual_seed(seed)``, spaces built with ``gymnasium.spaces`` from the npz shapes (Box(-inf, inf) of
the observation shape and dtype; Discrete(n_actions)), the trajectories become
``imitation.data.types.TrajectoryWithRew`` and are flattened with ``imitation.data.rollout``,
then ``imitation.algorithms.bc.BC`` with an SB3 ``ActorCriticPolicy(net_arch=hidden_sizes)`` (tanh,
orthogonal init, FlattenExtractor: no observation normalisation -- imitation's ``FeedForward32Policy``
is this with [32, 32]), Adam(lr), ``ent_weight``, ``l2_weight``, batch size B, and
``trainer.train(n_epochs=E, progress_bar=False, log_interval=10**9)``.

Timing: ``train_seconds`` is ``train()`` alone (perf_counter), ``train_cpu_seconds`` the same span in
process CPU time (time.process_time, robust to other load on the machine); ``total_seconds`` adds
building the policy, the data loader and the trainer. ``samples`` counts the optimiser steps (``on_batch_end``)
times B: imitation's loader drops the incomplete last batch (``drop_last=True``), so an epoch is
floor(n / B) * B samples. One untimed warm-up ``train(n_batches=5)`` on the first job runs before all
timed jobs (first-call costs of torch). Torch threads are set to ``threads``.

Output ``out`` (.npz): the actor's weights ``W0, b0, W1, b1, ...`` (mlp_extractor.policy_net linear
layers, then action_net), torch layout (out, in), plus ``check_obs`` / ``check_acts``: the first 256
demo observations and ``policy.predict(obs, deterministic=True)`` on them, so the caller can verify its
rebuild of the argmax policy.

Exactly one JSON line is printed to stdout: versions, thread count and one record per job.

Extensions for ``benchmarks/bc_dagger_time_to_expert.py`` (absent keys = the behaviour above, unchanged):

* ``cfg["eval"] = {"env": "CartPole-v1", "episodes": 10, "seed": 20000}``: after every epoch (``BC.train``'s
  ``on_epoch_end``) the greedy policy (``predict(deterministic=True)``) plays ``episodes`` episodes of ``env`` in
  this venv's gymnasium, episode k reset with ``seed + k`` (``greedy_returns`` of
  imitation_sqil_density_baseline.py); its wall / CPU time is taken off ``train_seconds`` / ``train_cpu_seconds``
  and each record gets ``evals`` (``timesteps`` = epoch, ``train_seconds`` at that epoch, ``return``). If this
  gymnasium cannot make the env (0.29 has no LunarLander-v3, and Box2D is not installed here), the actor weights
  of every epoch go instead to the job's ``snapshots`` .npz (keys ``e{epoch}_W0``, ...) for the caller to score.
* a job ``{"kind": "dagger", "env": "CartPole-v1", "seed": s, "rounds": R, "episodes_per_round": k, "epochs": e,
  "beta_rounds": 5, "expert": {"w": [...], "b": 0.0, "check_obs": [[...]], "check_acts": [...]}}``:
  ``SimpleDAggerTrainer`` on ``make_vec_env(env, n_envs=1, rng)`` with an SB3 ``BasePolicy`` expert applying the
  linear threshold rule ``int(sum_i w_i obs_i > b)`` (its agreement with ``check_acts`` is reported), a BC
  trainer built as above (no demonstrations), ``LinearBetaSchedule(beta_rounds)``; R calls of
  ``train(total_timesteps=1, rollout_round_min_episodes=k, rollout_round_min_timesteps=1, bc_train_kwargs=
  {"n_epochs": e, "log_rollouts_venv": None, ...})``, each of which runs exactly one round (imitation's BC
  continues training across rounds); timed: the train calls; with ``cfg["eval"]`` an evaluation after each.
  An untimed one-round warm-up DAgger run precedes the timed jobs.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import logging
import os
import sys
import tempfile
import time
import warnings

import numpy as np
import torch as th
from gymnasium import spaces


def load_demos(path: str):
    from imitation.data import rollout, types

    with np.load(path, allow_pickle=False) as z:
        obs, acts, rews = z["obs"], z["acts"], z["rews"]
        lengths, terminal = z["lengths"], z["terminal"]
    trajs, a0 = [], 0
    for k, T in enumerate(int(t) for t in lengths):
        o0 = a0 + k  # each trajectory stores T + 1 observations
        trajs.append(types.TrajectoryWithRew(obs=obs[o0:o0 + T + 1], acts=acts[a0:a0 + T], infos=None,
                                             terminal=bool(terminal[k]),
                                             rews=rews[a0:a0 + T].astype(np.float32)))
        a0 += T
    return obs, rollout.flatten_trajectories(trajs)


def make_trainer(obs_space, act_space, seed: int, cfg: dict, logger, demonstrations):
    """``torch.manual_seed(seed)``, the SB3 actor-critic policy and imitation's ``BC`` with the job settings."""
    from imitation.algorithms import bc
    from stable_baselines3.common.policies import ActorCriticPolicy

    th.manual_seed(int(seed))  # policy init and the DataLoader's shuffling
    policy = ActorCriticPolicy(observation_space=obs_space, action_space=act_space,
                               lr_schedule=lambda _: th.finfo(th.float32).max,
                               net_arch=list(cfg["hidden_sizes"]))
    return bc.BC(observation_space=obs_space, action_space=act_space,
                 rng=np.random.default_rng(int(seed)), demonstrations=demonstrations,
                 policy=policy, batch_size=int(cfg["batch_size"]), ent_weight=float(cfg["ent_weight"]),
                 l2_weight=float(cfg["l2_weight"]), optimizer_kwargs={"lr": float(cfg["lr"])},
                 custom_logger=logger)


def build(job: dict, cfg: dict, logger):
    obs, transitions = load_demos(job["npz"])
    obs_space = spaces.Box(-np.inf, np.inf, shape=obs.shape[1:], dtype=obs.dtype)
    act_space = spaces.Discrete(int(job["n_actions"]))
    return make_trainer(obs_space, act_space, job["seed"], cfg, logger, transitions), transitions


def actor_arrays(policy, prefix: str = "") -> dict:
    """The actor's weights ``W0, b0, W1, b1, ...`` (policy_net linear layers, then action_net; layout (out, in))."""
    layers = [m for m in policy.mlp_extractor.policy_net if isinstance(m, th.nn.Linear)] + [policy.action_net]
    arrays = {}
    for i, layer in enumerate(layers):
        arrays[f"{prefix}W{i}"] = layer.weight.detach().cpu().numpy().copy()
        arrays[f"{prefix}b{i}"] = layer.bias.detach().cpu().numpy().copy()
    return arrays


def export(policy, path: str, obs: np.ndarray) -> None:
    acts, _ = policy.predict(obs, deterministic=True)
    np.savez(path, check_obs=obs, check_acts=np.asarray(acts), **actor_arrays(policy))


# -- per-epoch / per-round evaluation and DAgger (bc_dagger_time_to_expert.py; unused without cfg["eval"]) ---------
def eval_mode(cfg: dict) -> str | None:
    """"env": greedy episodes in this venv's gymnasium; "snapshots": its gymnasium cannot make the env (e.g.
    LunarLander-v3: 0.29 has no v3 and no Box2D here), so the actor is saved after each epoch for the caller to
    score; None: no evaluation (bc_vs_imitation.py)."""
    ev = cfg.get("eval")
    if not ev:
        return None
    import importlib

    import gymnasium as gym

    importlib.import_module("imitation_sqil_density_baseline")  # greedy_returns' module, imported untimed
    try:
        gym.make(ev["env"]).close()
        return "env"
    except Exception as exc:  # noqa: BLE001 -- NameNotFound, DependencyNotInstalled, ...
        ev["unavailable"] = f"{type(exc).__name__}: {exc}"
        return "snapshots"


class Evaluator:
    """Called after each epoch (BC, ``on_epoch_end``) or round (DAgger): the greedy policy plays
    ``cfg["eval"]["episodes"]`` episodes reset with seeds ``eval.seed + k`` (``greedy_returns``), or, in
    "snapshots" mode, its actor is stored; wall / CPU spent here are taken off the training clocks.
    ``evals[i]["timesteps"]`` counts epochs (rounds) so the caller's time_to_expert applies."""

    def __init__(self, cfg: dict, mode: str, policy_of):
        self.ev, self.mode, self.policy_of = cfg["eval"], mode, policy_of
        self.evals, self.snapshots, self.wall, self.cpu = [], {}, 0.0, 0.0
        self.t0 = time.perf_counter()

    def start(self) -> None:
        self.t0, self.wall, self.cpu = time.perf_counter(), 0.0, 0.0

    def __call__(self, train_seconds: float | None = None) -> None:
        from imitation_sqil_density_baseline import greedy_returns  # this directory is on sys.path

        seconds = time.perf_counter() - self.t0 - self.wall if train_seconds is None else train_seconds
        w, c = time.perf_counter(), time.process_time()
        policy, n = self.policy_of(), len(self.evals) + 1
        entry = {"timesteps": n, "train_seconds": seconds}
        if self.mode == "env":
            rets = greedy_returns(self.ev["env"], lambda o: policy.predict(o, deterministic=True)[0],
                                  int(self.ev["episodes"]), int(self.ev["seed"]))
            entry.update({"return": float(rets.mean()), "return_std": float(rets.std())})
        else:
            self.snapshots.update(actor_arrays(policy, prefix=f"e{n}_"))
        self.evals.append(entry)
        self.wall += time.perf_counter() - w
        self.cpu += time.process_time() - c


def rule_expert(obs_space, act_space, w, b):
    """An SB3 ``BasePolicy`` applying the linear threshold rule ``action = int(sum_i w_i obs_i > b)`` (irlhf's
    scripted CartPole expert; the weights come from the caller), summed term by term in float32 as irlhf's."""
    from stable_baselines3.common.policies import BasePolicy

    class RuleExpert(BasePolicy):
        def forward(self, obs, deterministic: bool = True):
            return self._predict(obs, deterministic)

        def _predict(self, observation, deterministic: bool = False):
            x = observation.float()
            score = x[:, 0] * float(w[0])
            for i in range(1, len(w)):
                score = score + x[:, i] * float(w[i])
            return (score > float(b)).long()

    return RuleExpert(obs_space, act_space)


def import_dagger() -> tuple:
    """(imitation.algorithms.dagger, how it stores each round's episodes). imitation.data.serialize imports
    HuggingFace ``datasets`` (pyarrow); where that cannot import (this venv: pyarrow 26 needs NumPy >= 2, the venv
    pins NumPy < 2) a stand-in module pickles the trajectory list per file, as the legacy pickle format its own
    ``serialize.load`` still reads; DAgger's logic (save each episode, reload the aggregate per round) is unchanged."""
    import importlib
    import pickle
    import types as pytypes

    try:
        importlib.import_module("datasets")
        store = "imitation.data.serialize (HuggingFace datasets)"
    except Exception as exc:  # noqa: BLE001 -- ImportError from pyarrow
        import imitation.data

        def save(path, trajectories) -> None:  # save_to_disk makes the parent folders too
            os.makedirs(os.path.dirname(os.fspath(path)), exist_ok=True)
            with open(path, "wb") as f:
                pickle.dump(list(trajectories), f)

        def load(path):
            with open(path, "rb") as f:
                return pickle.load(f)

        stand_in = pytypes.ModuleType("imitation.data.serialize")
        stand_in.save, stand_in.load = save, load
        sys.modules["imitation.data.serialize"] = stand_in
        imitation.data.serialize = stand_in
        store = f"pickle stand-in for imitation.data.serialize ({type(exc).__name__}: {exc})"
    return importlib.import_module("imitation.algorithms.dagger"), store


def run_dagger(job: dict, cfg: dict, logger, mode: str | None) -> dict:
    """imitation's ``SimpleDAggerTrainer`` for ``job["rounds"]`` rounds: one ``train(total_timesteps=1, ...)`` call
    per round (a call ends after its first round; ``round_num`` and so beta carry over), timed: the train calls."""
    from imitation.util.util import make_vec_env

    dagger, store = import_dagger()

    seed, rounds = int(job["seed"]), int(job["rounds"])
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    venv = make_vec_env(job["env"], n_envs=1, rng=rng)
    rule = job["expert"]
    expert = rule_expert(venv.observation_space, venv.action_space, rule["w"], rule["b"])
    check_obs = np.asarray(rule["check_obs"], dtype=np.float32)
    agree = float(np.mean(expert.predict(check_obs, deterministic=True)[0] == np.asarray(rule["check_acts"])))
    bc_trainer = make_trainer(venv.observation_space, venv.action_space, seed, cfg, logger, None)
    kwargs = {"n_epochs": int(job["epochs"]), "progress_bar": False, "log_interval": 10**9,
              "log_rollouts_venv": None}
    evaluator = Evaluator(cfg, mode, lambda: bc_trainer.policy) if mode else None
    wall = cpu = 0.0
    per_round = []
    with tempfile.TemporaryDirectory(prefix="imitation-dagger-") as scratch:
        trainer = dagger.SimpleDAggerTrainer(venv=venv, scratch_dir=scratch, expert_policy=expert, rng=rng,
                                             bc_trainer=bc_trainer, custom_logger=logger,
                                             beta_schedule=dagger.LinearBetaSchedule(int(job["beta_rounds"])))
        for r in range(rounds):
            beta = float(trainer.beta_schedule(trainer.round_num))
            t1, c1 = time.perf_counter(), time.process_time()
            trainer.train(total_timesteps=1, rollout_round_min_episodes=int(job["episodes_per_round"]),
                          rollout_round_min_timesteps=1, bc_train_kwargs=kwargs)
            wall += time.perf_counter() - t1
            cpu += time.process_time() - c1
            files = list((trainer.scratch_dir / "demos" / f"round-{r:03d}").glob("*.npz"))
            per_round.append({"round": r, "beta": beta, "episodes": len(files)})
            if evaluator is not None:
                evaluator(train_seconds=wall)
        n_samples = sum(len(t) for t in getattr(trainer, "_all_demos", []))  # the aggregate, as loaded
    total = time.perf_counter() - t0 - (evaluator.wall if evaluator else 0.0)
    if evaluator is not None and evaluator.snapshots and job.get("snapshots"):
        np.savez(job["snapshots"], **evaluator.snapshots)
    venv.close()
    return {"kind": "dagger", "seed": seed, "train_seconds": wall, "train_cpu_seconds": cpu, "total_seconds": total,
            "rounds": per_round, "n_samples": n_samples, "expert_check_agreement": agree, "demo_store": store,
            "evals": evaluator.evals if evaluator else [], "eval_seconds": evaluator.wall if evaluator else 0.0}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", required=True, help="JSON file, see the module docstring")
    args = parser.parse_args(argv)
    with open(args.jobs) as f:
        cfg = json.load(f)
    th.set_num_threads(int(cfg.get("threads", 1)))
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    from imitation.util import logger as imit_logger

    B, E = int(cfg["batch_size"]), int(cfg["epochs"])
    records = []
    with tempfile.TemporaryDirectory(prefix="imitation-bc-") as logdir:
        logger = imit_logger.configure(folder=logdir, format_strs=[])  # no stdout output
        bc_jobs = [job for job in cfg["jobs"] if job.get("kind", "bc") == "bc"]
        dagger_jobs = [job for job in cfg["jobs"] if job.get("kind") == "dagger"]
        mode = eval_mode(cfg)
        if bc_jobs:  # warm-up, untimed
            trainer, _ = build(bc_jobs[0], cfg, logger)
            trainer.train(n_batches=5, progress_bar=False, log_interval=10**9)
        if dagger_jobs:  # warm-up, untimed: one round of one episode, one epoch
            run_dagger({**dagger_jobs[0], "rounds": 1, "episodes_per_round": 1, "epochs": 1, "snapshots": None},
                       cfg, logger, None)
        for job in cfg["jobs"]:
            if job.get("kind") == "dagger":
                records.append({**run_dagger(job, cfg, logger, mode), "out": job.get("out")})
                continue
            t0 = time.perf_counter()
            trainer, transitions = build(job, cfg, logger)
            steps = [0]

            def count() -> None:
                steps[0] += 1

            evaluator = Evaluator(cfg, mode, lambda: trainer.policy) if mode else None
            t1, c1 = time.perf_counter(), time.process_time()
            if evaluator is not None:
                evaluator.start()
            trainer.train(n_epochs=E, progress_bar=False, log_interval=10**9, on_batch_end=count,
                          on_epoch_end=evaluator)
            t2, c2 = time.perf_counter(), time.process_time()
            spent, spent_cpu = (evaluator.wall, evaluator.cpu) if evaluator else (0.0, 0.0)
            export(trainer.policy, job["out"], transitions.obs[:256])
            record = {"npz": job["npz"], "seed": job["seed"], "n_samples": len(transitions),
                      "steps": steps[0], "samples": steps[0] * B, "train_seconds": t2 - t1 - spent,
                      "train_cpu_seconds": c2 - c1 - spent_cpu, "total_seconds": t2 - t0 - spent, "out": job["out"]}
            if evaluator is not None:
                record.update(evals=evaluator.evals, eval_seconds=spent)
                if evaluator.snapshots and job.get("snapshots"):
                    np.savez(job["snapshots"], **evaluator.snapshots)
            records.append(record)
    print(json.dumps({"imitation_version": md.version("imitation"),
                      "stable_baselines3_version": md.version("stable-baselines3"),
                      "gymnasium_version": md.version("gymnasium"), "torch_version": th.__version__,
                      "numpy_version": np.__version__, "python_version": sys.version.split()[0],
                      "torch_threads": th.get_num_threads(),
                      **({"eval_mode": mode, "eval": cfg["eval"]} if mode else {}),
                      "records": records}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
