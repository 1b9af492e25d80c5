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
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import logging
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


def build(job: dict, cfg: dict, logger):
    from imitation.algorithms import bc
    from stable_baselines3.common.policies import ActorCriticPolicy

    obs, transitions = load_demos(job["npz"])
    obs_space = spaces.Box(-np.inf, np.inf, shape=obs.shape[1:], dtype=obs.dtype)
    act_space = spaces.Discrete(int(job["n_actions"]))
    th.manual_seed(int(job["seed"]))  # policy init and the DataLoader's shuffling
    policy = ActorCriticPolicy(observation_space=obs_space, action_space=act_space,
                               lr_schedule=lambda _: th.finfo(th.float32).max,
                               net_arch=list(cfg["hidden_sizes"]))
    trainer = bc.BC(observation_space=obs_space, action_space=act_space,
                    rng=np.random.default_rng(int(job["seed"])), demonstrations=transitions,
                    policy=policy, batch_size=int(cfg["batch_size"]), ent_weight=float(cfg["ent_weight"]),
                    l2_weight=float(cfg["l2_weight"]), optimizer_kwargs={"lr": float(cfg["lr"])},
                    custom_logger=logger)
    return trainer, transitions


def export(policy, path: str, obs: np.ndarray) -> None:
    layers = [m for m in policy.mlp_extractor.policy_net if isinstance(m, th.nn.Linear)] + [policy.action_net]
    arrays = {}
    for i, layer in enumerate(layers):
        arrays[f"W{i}"] = layer.weight.detach().cpu().numpy()
        arrays[f"b{i}"] = layer.bias.detach().cpu().numpy()
    acts, _ = policy.predict(obs, deterministic=True)
    np.savez(path, check_obs=obs, check_acts=np.asarray(acts), **arrays)


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
        if cfg["jobs"]:  # warm-up, untimed
            trainer, _ = build(cfg["jobs"][0], cfg, logger)
            trainer.train(n_batches=5, progress_bar=False, log_interval=10**9)
        for job in cfg["jobs"]:
            t0 = time.perf_counter()
            trainer, transitions = build(job, cfg, logger)
            steps = [0]

            def count() -> None:
                steps[0] += 1

            t1, c1 = time.perf_counter(), time.process_time()
            trainer.train(n_epochs=E, progress_bar=False, log_interval=10**9, on_batch_end=count)
            t2, c2 = time.perf_counter(), time.process_time()
            export(trainer.policy, job["out"], transitions.obs[:256])
            records.append({"npz": job["npz"], "seed": job["seed"], "n_samples": len(transitions),
                            "steps": steps[0], "samples": steps[0] * B, "train_seconds": t2 - t1, "train_cpu_seconds": c2 - c1,
                            "total_seconds": t2 - t0, "out": job["out"]})
    print(json.dumps({"imitation_version": md.version("imitation"),
                      "stable_baselines3_version": md.version("stable-baselines3"),
                      "gymnasium_version": md.version("gymnasium"), "torch_version": th.__version__,
                      "numpy_version": np.__version__, "python_version": sys.version.split()[0],
                      "torch_threads": th.get_num_threads(), "records": records}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
