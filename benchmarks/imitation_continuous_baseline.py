"""imitation's BC, GAIL, AIRL and SQIL on continuous control (Hopper, Pendulum), for
``benchmarks/continuous_vs_imitation.py``.

Run with the interpreter of the dedicated venv (see setup_imitation_venv.sh, which installs MuJoCo), never with the
project's own environment; irlhf is not imported here (the demonstrations are read with plain numpy)::

    benchmarks/.venv-imitation/bin/python benchmarks/imitation_continuous_baseline.py --jobs jobs.json

``jobs.json`` (written by the caller from irlhf's effective settings: ``sac_kwargs`` = ``irlhf.rl.sb3.hyperparams(env,
"sac")`` without n_timesteps / n_envs, ``sqil_sac_kwargs`` the same with ``irlhf.imitation.sqil.SAC_DEFAULTS``,
the discriminator settings from ``irlhf.irl.adversarial.Config``, ``bc`` from ``irlhf.imitation.bc.Config``)::

    {"threads": 1, "n_envs": 1, "sac_kwargs": {"learning_starts": 10000},
     "sqil_sac_kwargs": {"learning_starts": 10000, "tau": 0.001, "learning_rate": 0.0003},
     "bc": {"hidden_sizes": [64, 64], "activation": "relu", "batch_size": 64, "epochs": 200, "lr": 0.001,
            "ent_weight": 0.001, "l2_weight": 0.0},
     "horizon": "absorb", "reward_output_norm": "running", "demo_batch_size": 256, "n_disc_updates_per_round": 32,
     "disc_lr": 0.003, "disc_hidden_sizes": [64, 64], "gen_train_timesteps": 1000,
     "gen_replay_buffer_capacity": null, "airl_state_only": true, "sqil_demo_actions": "raw",
     "warmup_timesteps": 1000,
     "jobs": [{"method": "sqil", "env": "Hopper-v5", "demos": "demos_s0.npz", "total_timesteps": 50000,
               "seed": 0, "out": "sqil_s0.npz"}, ...]}

``env`` is irlhf's env id; the env imitation trains on (``TRAIN_ENVS``; gymnasium 0.29 has no Hopper-v5, whose
11-d observation and 3-d action Hopper-v4 shares): BC reads its spaces from Hopper-v4 (no env is stepped); SQIL
trains on plain ``Hopper-v4`` (imitation's SQIL has no fixed-horizon check; episodes end on a fall, as irlhf's);
GAIL / AIRL refuse variable-horizon episodes, so they train on seals' fixed-horizon ``seals/Hopper-v1``
(imitation's own benchmark env: Hopper-v4 without early termination, 1000 steps) registered here as
``seals/HopperObs11-v1`` with ``exclude_current_positions_from_observation=True`` (seals adds the x position,
a 12th observation, which the 11-d demonstrations lack). Pendulum-v1 never terminates: ``Pendulum-v1`` throughout.
The caller scores every exported policy on irlhf's env (Hopper-v5 / Pendulum-v1).

Demonstrations (.npz, the format of ``imitation_adversarial_baseline.py``: obs, acts (N, act_dim), next_obs, dones,
ep_lens): GAIL / AIRL read them with that script's ``load_demos`` (every episode end a done, as imitation's own
rollouts); SQIL and BC with ``imitation_sqil_density_baseline.load_demos`` (terminal = irlhf's last ``dones`` flag:
a fall is terminal, a time-limit cut is not).

Per job (irlhf's value wherever imitation has the knob):

* ``bc``: ``imitation.algorithms.bc.BC`` with an SB3 ``ActorCriticPolicy(net_arch=hidden_sizes,
  activation_fn=<activation>)`` (Gaussian, state-independent log-std, orthogonal init, no observation
  normalisation), Adam(lr), ``ent_weight``, ``l2_weight``, batch size, ``train(n_epochs=epochs)`` on ALL the
  demonstrations, as irlhf's BC since session 39 (before, irlhf held out 10% and stopped after 10 epochs
  without improvement, keeping the best epoch). Export: ``imitation_bc_baseline.export`` (the
  policy net's linear layers then ``action_net``: the deterministic action is the mean, clipped to the bounds).
* ``gail`` / ``airl``: ``imitation_adversarial_baseline.run`` with ``algo="sac"`` (SB3 SAC with ``sac_kwargs``, its
  ``ReplayBufferRewardWrapper`` relabelling, rounds of ``gen_train_timesteps`` = irlhf's 1000 SAC steps, the
  discriminator settings above; see that script's docstring for the knobs it cannot match). Export:
  ``imitation_prefs_baseline.export_sac``.
* ``sqil``: ``imitation.algorithms.sqil.SQIL(venv, demonstrations, policy="MlpPolicy", rl_algo_class=SAC,
  rl_kwargs=sqil_sac_kwargs | {seed, device="cpu"})`` on ``make_vec_env(train env, n_envs)``, then
  ``trainer.train(total_timesteps=T)``: half of each batch from the demonstrations (reward 1), half from the agent
  (reward 0), as irlhf's ``demo_fraction=0.5``. imitation stores the demonstrations' actions as they are while
  SAC's own buffer holds actions scaled to [-1, 1] (the same on Hopper, whose bounds are [-1, 1]; on Pendulum-v1,
  bounds [-2, 2], the demo actions are twice the scale of the agent's): ``sqil_demo_actions="raw"`` (default)
  keeps imitation's behaviour, ``"scaled"`` hands it actions already scaled (irlhf's). Export: ``export_sac``.

Timing: ``train_seconds`` / ``train_cpu_seconds``: ``perf_counter`` / ``process_time`` around ``trainer.train``
only; ``total_seconds``: building + training + export. ``warmup_timesteps``: before the timed jobs, one untimed,
unreported short run per method (BC: one epoch). Exactly one JSON line is printed to stdout (imitation's own prints
go to stderr): versions, the unmatched knobs and one record per job (with SQIL's effective SAC settings).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
import tempfile
import time

import numpy as np
import torch as th
# this directory is on sys.path when run as a script
import imitation_adversarial_baseline as adversarial
import imitation_prefs_baseline as prefs
from imitation_bc_baseline import export
from imitation_sqil_density_baseline import load_demos
from sqil_density_vs_imitation import settings_of

METHODS = ("bc", "gail", "airl", "sqil")
SEALS_HOPPER = "seals/HopperObs11-v1"
# irlhf env -> (env imitation's SQIL / BC use, env its GAIL / AIRL use, the id it is scored on by the caller)
TRAIN_ENVS = {"Hopper-v5": {"sqil": "Hopper-v4", "adversarial": SEALS_HOPPER},
              "Pendulum-v1": {"sqil": "Pendulum-v1", "adversarial": "Pendulum-v1"}}
SAC_REPORTED = ("learning_rate", "batch_size", "buffer_size", "learning_starts", "gamma", "tau", "gradient_steps",
                "target_update_interval", "ent_coef", "target_entropy", "n_envs")
UNMATCHED = {
    "bc": {
        "obs_normalisation": "irlhf standardises observations with the demos' mean / std; imitation: none",
        "init": "irlhf: torch default init; imitation: SB3's orthogonal init (log-std 0)",
        "last_batch": "irlhf keeps an epoch's incomplete last batch; imitation's loader drops it",
    },
    "gail": {**{k: v for k, v in adversarial.UNMATCHED.items() if k != "gen_reward_normalisation"},  # PPO only
             "fixed_horizon_env": "Hopper only: imitation trains GAIL / AIRL on seals/Hopper-v1 (no early "
                                  "termination, x position dropped); irlhf on Hopper-v5 with an absorbing state"},
    "sqil": {
        "timeout_termination": "imitation's agent buffer: handle_timeout_termination=False (a time-limit cut is "
                               "terminal); irlhf: SB3's timeout handling",
        "demo_action_scale": "imitation stores demo actions unscaled, SAC's own scaled to [-1, 1] (same on Hopper; "
                             "Pendulum: a factor 2, unless sqil_demo_actions='scaled'); irlhf scales them",
        "demo_sampling": "imitation: SB3 ReplayBuffer.sample on global numpy RNG; irlhf: own seeded Generator",
        "env_version": "Hopper only: imitation (gymnasium 0.29) trains on Hopper-v4, irlhf on Hopper-v5",
        "sb3_version": "imitation pins stable-baselines3 2.2.1; irlhf runs the project's SB3",
    },
}
UNMATCHED["airl"] = UNMATCHED["gail"]


def register_seals_hopper() -> None:
    """seals/Hopper-v1 with the 11-d observation of Hopper-v4 / v5 (its x position left out), as a gymnasium id."""
    import gymnasium as gym

    importlib.import_module("seals")  # registers seals/Hopper-v1
    if SEALS_HOPPER not in gym.registry:
        spec = gym.spec("seals/Hopper-v1")
        gym.register(id=SEALS_HOPPER, entry_point=spec.entry_point, max_episode_steps=spec.max_episode_steps,
                     kwargs={"exclude_current_positions_from_observation": True})


def train_env(job: dict, kind: str) -> str:
    if job["env"] not in TRAIN_ENVS:
        raise ValueError(f"env={job['env']!r}: expected one of {sorted(TRAIN_ENVS)}")
    return TRAIN_ENVS[job["env"]][kind]


def run_bc(job: dict, cfg: dict, logger) -> dict:
    import gymnasium as gym
    from imitation.algorithms import bc
    from stable_baselines3.common.policies import ActorCriticPolicy

    t0 = time.perf_counter()
    seed, b = int(job["seed"]), cfg["bc"]
    trajs, demo_obs = load_demos(job["demos"])
    env_id = train_env(job, "sqil")
    env = gym.make(env_id)
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    th.manual_seed(seed)  # policy init and the DataLoader's shuffling
    activation = {"relu": th.nn.ReLU, "tanh": th.nn.Tanh}[b["activation"]]
    policy = ActorCriticPolicy(observation_space=obs_space, action_space=act_space,
                               lr_schedule=lambda _: th.finfo(th.float32).max, net_arch=list(b["hidden_sizes"]),
                               activation_fn=activation)
    trainer = bc.BC(observation_space=obs_space, action_space=act_space, rng=np.random.default_rng(seed),
                    demonstrations=trajs, policy=policy, batch_size=int(b["batch_size"]),
                    ent_weight=float(b["ent_weight"]), l2_weight=float(b["l2_weight"]),
                    optimizer_kwargs={"lr": float(b["lr"])}, custom_logger=logger, device="cpu")
    steps = [0]

    def count() -> None:
        steps[0] += 1

    t1, c1 = time.perf_counter(), time.process_time()
    trainer.train(n_epochs=int(b["epochs"]), progress_bar=False, log_interval=10**9, on_batch_end=count)
    t2, c2 = time.perf_counter(), time.process_time()
    obs = demo_obs[np.random.default_rng(seed).permutation(len(demo_obs))[:256]].astype(np.float32)
    export(trainer.policy, job["out"], obs)
    return {"train_env": env_id + " (spaces only)", "horizon": "n/a", "epochs": int(b["epochs"]),
            "optimizer_steps": steps[0], "samples": steps[0] * int(b["batch_size"]),
            "train_seconds": t2 - t1, "train_cpu_seconds": c2 - c1, "total_seconds": time.perf_counter() - t0,
            "n_demo_transitions": int(len(demo_obs)), "agent_timesteps": 0}


def run_sqil(job: dict, cfg: dict, logger) -> dict:
    from imitation.algorithms.sqil import SQIL
    from imitation.data.types import Trajectory
    from imitation.util.util import make_vec_env
    from stable_baselines3 import SAC

    t0 = time.perf_counter()
    seed, total = int(job["seed"]), int(job["total_timesteps"])
    th.manual_seed(seed)
    rng = np.random.default_rng(seed)
    trajs, demo_obs = load_demos(job["demos"])
    env_id = train_env(job, "sqil")
    venv = make_vec_env(env_id, n_envs=int(cfg["n_envs"]), rng=rng)
    demo_actions = cfg.get("sqil_demo_actions", "raw")
    if demo_actions == "scaled":  # SAC's buffer format (irlhf's); NOT imitation's behaviour
        low, high = venv.action_space.low, venv.action_space.high
        trajs = [Trajectory(obs=t.obs, acts=np.clip(2.0 * (t.acts - low) / (high - low) - 1.0, -1, 1),
                            infos=None, terminal=t.terminal) for t in trajs]
    elif demo_actions != "raw":
        raise ValueError(f"sqil_demo_actions={demo_actions!r}: expected 'raw' or 'scaled'")
    rl_kwargs = {**cfg["sqil_sac_kwargs"], "seed": seed, "device": "cpu", "verbose": 0}
    trainer = SQIL(venv=venv, demonstrations=trajs, policy="MlpPolicy", custom_logger=logger, rl_algo_class=SAC,
                   rl_kwargs=rl_kwargs)
    model = trainer.rl_algo
    settings = settings_of(model, SAC_REPORTED)
    settings.update(expert_rows_per_batch=int(model.batch_size) - int(model.batch_size) // 2,
                    time_limit_cut="terminal", demo_actions=demo_actions, train_env=env_id)
    t1, c1 = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(sys.stderr):
        trainer.train(total_timesteps=total)
    t2, c2 = time.perf_counter(), time.process_time()
    obs = demo_obs[np.random.default_rng(seed).permutation(len(demo_obs))[:256]].astype(np.float32)
    diff = prefs.export_sac(model, job["out"], obs)
    venv.close()
    return {"train_env": env_id, "horizon": "variable", "settings": settings, "check_max_abs_diff": diff,
            "train_seconds": t2 - t1, "train_cpu_seconds": c2 - c1, "total_seconds": time.perf_counter() - t0,
            "n_demo_transitions": int(len(demo_obs)), "agent_timesteps": int(model.num_timesteps)}


def run_adversarial(job: dict, cfg: dict, logger) -> dict:
    """``imitation_adversarial_baseline.run`` (SAC generator) on the fixed-horizon training env."""
    env_id = train_env(job, "adversarial")
    if env_id == SEALS_HOPPER:
        register_seals_hopper()
        # make_venv maps the job's env to its seals port under horizon="absorb"
        prefs.SEALS_FIXED_HORIZON.setdefault("Hopper-v4", SEALS_HOPPER)
        env_for_run = "Hopper-v4"
    else:
        env_for_run = env_id
    built: dict = {}
    make_sac = adversarial.make_sac

    def capture(*args, **kwargs):  # keeps the generator, for its effective settings
        built["agent"] = make_sac(*args, **kwargs)
        return built["agent"]

    adversarial.make_sac = capture
    try:
        record = adversarial.run({**job, "env": env_for_run}, {**cfg, "algo": "sac", "eval_every": 0}, logger)
    finally:
        adversarial.make_sac = make_sac
    record["env"] = job["env"]
    record["settings"] = settings_of(built["agent"], SAC_REPORTED)
    if env_id == SEALS_HOPPER:
        record["train_env"] = f"{SEALS_HOPPER} (= seals/Hopper-v1, exclude_current_positions_from_observation=True)"
    return record


def run(job: dict, cfg: dict, logger) -> dict:
    method = job["method"]
    if method not in METHODS:
        raise ValueError(f"method={method!r}: expected one of {METHODS}")
    runner = {"bc": run_bc, "sqil": run_sqil}.get(method, run_adversarial)
    record = runner(job, cfg, logger)
    return {"method": method, "env": job["env"], "seed": int(job["seed"]),
            "total_timesteps": int(job.get("total_timesteps") or 0), "out": job["out"], **record}


def main(argv=None) -> int:
    cfg = prefs.read_jobs(__doc__.split("\n")[0], argv)
    from imitation.util import logger as imit_logger

    records = []
    with tempfile.TemporaryDirectory(prefix="imitation-continuous-") as logdir:
        logger = imit_logger.configure(folder=logdir, format_strs=[])  # no stdout output
        warm = int(cfg.get("warmup_timesteps") or 0)
        for method in sorted({job["method"] for job in cfg["jobs"]}) if warm else ():  # untimed, not reported
            first = next(job for job in cfg["jobs"] if job["method"] == method)
            run({**first, "total_timesteps": warm, "out": f"{logdir}/warmup_{method}.npz"},
                {**cfg, "bc": {**cfg["bc"], "epochs": 1}}, logger)
        for job in cfg["jobs"]:
            record = run(job, cfg, logger)
            print(f"imitation {record['method']} {job['env']} seed {job['seed']}: {record['train_seconds']:.0f} s "
                  "train", file=sys.stderr, flush=True)
            records.append(record)
    print(json.dumps({**prefs.versions("mujoco"), "unmatched": UNMATCHED, "records": records}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
