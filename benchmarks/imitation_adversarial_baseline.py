"""imitation's adversarial imitation (GAIL, AIRL), for ``benchmarks/adversarial_vs_imitation.py``.

Run with the interpreter of the dedicated venv (see setup_imitation_venv.sh), never with the project's own
environment; irlhf is not imported here (the demonstrations are read with plain numpy)::

    benchmarks/.venv-imitation/bin/python benchmarks/imitation_adversarial_baseline.py --jobs jobs.json

``jobs.json`` (the caller reads ``ppo_kwargs`` / ``n_envs`` from ``irlhf.rl.sb3.hyperparams(env, "ppo")`` and the
discriminator settings from ``irlhf.irl.adversarial.Config``'s defaults; ``"algo": "sac"`` reads ``sac_kwargs``)::

    {"threads": 1, "horizon": "absorb", "reward_output_norm": "running", "algo": "ppo", "n_envs": 8,
     "ppo_kwargs": {"n_steps": 32, "batch_size": 256, "gae_lambda": 0.8, "gamma": 0.98, "n_epochs": 20,
                    "ent_coef": 0.0, "learning_rate": "lin_0.001", "clip_range": "lin_0.2"},
     "demo_batch_size": 256, "n_disc_updates_per_round": 32, "disc_lr": 0.003, "disc_hidden_sizes": [64, 64],
     "gen_train_timesteps": null, "gen_replay_buffer_capacity": null, "airl_state_only": true,
     "warmup_timesteps": 256, "eval_every": 5000, "eval_episodes": 10, "eval_seed": 20000,
     "jobs": [{"method": "gail", "env": "CartPole-v1", "demos": "demos_s0.npz", "total_timesteps": 50000,
               "seed": 0, "out": "gail_s0.npz"}, ...]}

Demonstrations (``demos``, .npz written by the caller): ``obs`` (N, obs_dim), ``acts`` (N,) or (N, act_dim),
``next_obs`` (N, obs_dim), ``dones`` (N,) (irlhf's: True only on a real termination) and ``ep_lens`` (E,), the
lengths of the E episodes laid end to end. They are handed to imitation as a list of
``imitation.data.types.Trajectory`` (``obs`` = the episode's observations plus its last ``next_obs``,
``terminal=True``): imitation flattens them itself and, as in its own rollouts (whose ``BufferingWrapper``
records a TimeLimit end as done), every episode end is a done; AIRL's shaping uses that flag
(``gamma (1 - done) h(s')``). GAIL ignores it.

Per job (imitation's GAIL / AIRL tutorials and its ``train_adversarial`` script; irlhf's value wherever
imitation has the knob):

* env: ``make_venv`` of ``imitation_prefs_baseline.py`` (``imitation.util.util.make_vec_env``, n_envs from
  the job file). imitation refuses variable-horizon episodes, so ``horizon="absorb"`` (default) trains on
  seals' fixed-horizon port where there is one (CartPole-v1 -> ``seals/CartPole-v0``, imitation's own
  ``seals_cartpole`` benchmark env, record ``horizon="seals"``), as is for never-terminating envs
  (Pendulum-v1, ``"native"``), otherwise ``seals.util.AbsorbAfterDoneWrapper`` + TimeLimit
  (``"absorb_wrapper"``); ``"variable"`` is imitation's ``cartpole`` named config (plain CartPole-v1,
  ``allow_variable_horizon=True``). The exported policy is scored by the caller on the ORIGINAL env.
* discriminator: GAIL ``BasicRewardNet(obs, act, hid_sizes=disc_hidden_sizes,
  normalize_input_layer=RunningNorm)`` (state + action, ReLU: irlhf's GAIL input); AIRL
  ``BasicShapedRewardNet(..., reward_hid_sizes=potential_hid_sizes=disc_hidden_sizes,
  use_action=not airl_state_only, discount_factor=<generator gamma>, normalize_input_layer=RunningNorm)``
  (irlhf: state-only g, h, shaping gamma = the generator's). ``reward_output_norm="running"`` (default, the
  default of imitation's ``reward`` ingredient) wraps the net in ``NormalizedRewardNet(net, RunningNorm)``:
  this changes AIRL's generator reward (``reward_train`` is the net itself, ``predict_processed`` normalises)
  and is a no-op for GAIL (its ``reward_train`` wraps the raw logits in -log sigmoid(-logit) = -log(1 - D),
  irlhf's default GAIL reward); ``"none"`` = the tutorials' setting.
* ``GAIL`` / ``AIRL(demonstrations, demo_batch_size, venv, gen_algo, reward_net,
  n_disc_updates_per_round, disc_opt_kwargs={"lr": disc_lr}, gen_train_timesteps,
  gen_replay_buffer_capacity, allow_variable_horizon=horizon == "variable")``: Adam; each discriminator step
  sees ``demo_batch_size`` expert and as many generator transitions. ``gen_train_timesteps`` None = one PPO
  rollout (n_steps * n_envs; irlhf's ``round_steps`` default), SAC: 1000 when None (irlhf's SAC round; imitation's
  own default would be n_envs = 1 step per round). ``gen_replay_buffer_capacity`` None = the round's transitions
  (imitation's default; irlhf also draws policy transitions from the last round only).
* generator: SB3 ``PPO("MlpPolicy", venv, seed=seed, device="cpu", **ppo_kwargs)``. ``"lin_<x>"`` schedules
  decay linearly over the WHOLE run (closure over ``num_timesteps``, as in ``imitation_prefs_baseline.py``):
  imitation calls ``learn()`` once per round with ``reset_num_timesteps=False``, where SB3's own progress would
  restart every round. SAC (``algo="sac"``, Box actions): ``SAC("MlpPolicy", venv, seed, device="cpu",
  **sac_kwargs)`` with imitation's ``ReplayBufferRewardWrapper`` (as its ``train_adversarial`` script installs
  for off-policy generators) relabelling each sampled batch with the CURRENT ``reward_train``
  (``predict_processed(update_stats=False)``; SB3 stores actions scaled to [-1, 1] and imitation passes them on
  as they are, see ``imitation_prefs_baseline.py``; the sampled dones, (B, 1) in SB3, are flattened to (B,), without
  which AIRL's shaped net fails its shape assertion in imitation 1.0.1).
* ``trainer.train(total_timesteps, callback=...)``: ``total_timesteps // gen_train_timesteps`` rounds (record
  ``agent_timesteps``). ``train_seconds`` / ``train_cpu_seconds``: ``time.perf_counter`` /
  ``time.process_time`` around ``train()`` only, evaluations excluded; ``total_seconds``: building + training +
  export, evaluations excluded.
* evaluation in training (``eval_every`` > 0; 0 or absent: none): imitation's per-round ``callback(round)``
  (called after the round's generator and discriminator steps) evaluates the greedy policy
  (``predict(deterministic=True)``) at the first round end past every multiple of ``eval_every`` env steps
  (``agent.num_timesteps``) on ``eval_episodes`` episodes of the job's ORIGINAL env (``env``, not the training
  env), episode k reset with ``eval_seed + k`` (irlhf's ``evaluate`` protocol; ``greedy_returns`` of
  ``imitation_sqil_density_baseline.py``). Its time is excluded from the clock: ``evals`` holds (timesteps,
  train_seconds, return) with ``train_seconds`` the wall seconds since ``train()`` started minus earlier
  evaluations; ``eval_seconds``: their total.

Knobs of irlhf's adversarial loop imitation does not have (reported in the record's ``unmatched``): the
absorbing state for episode ends (imitation fixes the horizon instead, see ``horizon``); input normalisation
(irlhf: fixed mean / std of the demonstrations; imitation: ``RunningNorm`` updated on every batch); PPO's
reward normalisation (irlhf wraps the generator in ``VecNormalize(norm_reward=True)``; imitation has none:
``gen_normalize_reward=true`` in the job file adds the same wrapper around imitation's reward-wrapped venv, not
imitation's behaviour); AIRL's generator reward (irlhf: f - log pi, the logit; imitation: f); irlhf's expert
batch is drawn with replacement per step, imitation cycles through shuffled epochs.

Output ``out`` (.npz): PPO: the actor ``W0, b0, ...`` (``mlp_extractor.policy_net`` linear layers then
``action_net``, tanh, torch layout (out, in)) and ``check_obs`` (up to 256 demonstration observations) /
``check_acts`` (``policy.predict(check_obs, deterministic=True)``), as ``imitation_bc_baseline.export``. SAC:
``imitation_prefs_baseline.export_sac`` (asserts the numpy rebuild within 1e-5).

``warmup_timesteps`` (optional): before the timed jobs, one untimed, unreported run per method (the first job
of that method at this budget, e.g. one PPO rollout), so that imports and first-call costs are not timed.

Exactly one JSON line is printed to stdout (imitation's own prints go to stderr): versions and one record per
job.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata as md
import json
import logging
import sys
import tempfile
import time
import warnings

import numpy as np
import torch as th
from imitation_bc_baseline import export  # this directory is on sys.path when run as a script
from imitation_prefs_baseline import export_sac, make_venv, schedule
from imitation_sqil_density_baseline import Clock, greedy_returns

METHODS = ("gail", "airl")
UNMATCHED = {
    "absorbing": "irlhf scores episode ends through an absorbing state; imitation needs a fixed horizon instead "
                 "(seals port / AbsorbAfterDoneWrapper, see 'horizon')",
    "disc_input_normalisation": "irlhf: fixed demo mean/std; imitation: RunningNorm updated on each batch",
    "gen_reward_normalisation": "irlhf: VecNormalize(norm_reward=True) on the PPO generator; imitation: none "
                                "(unless gen_normalize_reward)",
    "airl_generator_reward": "irlhf: f - log pi (the logit); imitation: f (reward_train, optionally normalised)",
    "expert_sampling": "irlhf: expert batch with replacement each step; imitation: shuffled epochs, drop_last",
}


def load_demos(path: str) -> tuple[list, np.ndarray]:
    """imitation ``Trajectory`` list (every episode end terminal) and the observations."""
    from imitation.data.types import Trajectory

    with np.load(path) as z:
        obs, acts, next_obs, lens = z["obs"], z["acts"], z["next_obs"], z["ep_lens"].astype(int)
    if lens.sum() != len(obs):
        raise ValueError(f"{path}: ep_lens sum {lens.sum()} != {len(obs)} transitions")
    trajs, start = [], 0
    for n in lens:
        seg = slice(start, start + n)
        trajs.append(Trajectory(obs=np.concatenate([obs[seg], next_obs[start + n - 1:start + n]]),
                                acts=acts[seg], infos=None, terminal=True))
        start += n
    return trajs, obs


def make_sac(cfg: dict, venv, holder: dict, total: int, seed: int):
    """SB3 SAC whose replay batches are relabelled with the trainer's current reward_train."""
    from imitation.policies.replay_buffer_wrapper import ReplayBufferRewardWrapper
    from stable_baselines3 import SAC
    from stable_baselines3.common.buffers import ReplayBuffer

    def reward_fn(state, action, next_state, done):
        # SB3's replay samples hold dones as (B, 1); AIRL's shaped net would broadcast (1 - done) * h(s') to
        # (B, B) and fail its shape assertion (imitation 1.0.1), so they are flattened to (B,) here
        return holder["trainer"].reward_train.predict_processed(state, action, next_state,
                                                                np.asarray(done).reshape(-1), update_stats=False)

    kwargs = {k: schedule(v, holder, total) for k, v in cfg.get("sac_kwargs", {}).items()}
    kwargs.update(replay_buffer_class=ReplayBufferRewardWrapper,
                  replay_buffer_kwargs={"replay_buffer_class": ReplayBuffer, "reward_fn": reward_fn})
    return SAC("MlpPolicy", venv, seed=seed, verbose=0, device="cpu", **kwargs)


def greedy_returns_any(env_id: str, predict, n: int, seed: int) -> np.ndarray:
    """``greedy_returns`` of ``imitation_sqil_density_baseline`` (episode k reset with ``seed + k``), also for Box
    actions of one dimension (there the action keeps its shape)."""
    import gymnasium as gym

    env = gym.make(env_id)
    box = isinstance(env.action_space, gym.spaces.Box)
    env.close()
    if not box:
        return greedy_returns(env_id, predict, n, seed)
    returns = np.zeros(n)
    for k in range(n):
        env = gym.make(env_id)
        obs, _ = env.reset(seed=seed + k)
        done = False
        while not done:
            act = np.asarray(predict(obs[None])).reshape(env.action_space.shape)
            obs, r, term, trunc, _ = env.step(act)
            returns[k] += r
            done = term or trunc
        env.close()
    return returns


def make_round_callback(cfg: dict, env_id: str, agent, clock: Clock, evals: list):
    """``trainer.train``'s callback(round): evaluate the greedy policy at the first round end past each multiple of
    ``eval_every`` env steps (``agent.num_timesteps``), its time excluded from ``clock``."""
    every = int(cfg.get("eval_every", 0) or 0)
    state = {"next": every}

    def on_round(_round: int) -> None:
        t = int(agent.num_timesteps)
        if every <= 0 or t < state["next"]:
            return
        seconds = clock.wall()
        w, c = time.perf_counter(), time.process_time()
        rets = greedy_returns_any(env_id, lambda o: agent.predict(o, deterministic=True)[0],
                                  int(cfg["eval_episodes"]), int(cfg["eval_seed"]))
        evals.append({"timesteps": t, "train_seconds": seconds, "return": float(rets.mean()),
                      "return_std": float(rets.std())})
        state["next"] = (t // every + 1) * every
        clock.eval_wall += time.perf_counter() - w
        clock.eval_cpu += time.process_time() - c

    return on_round


def run(job: dict, cfg: dict, logger) -> dict:
    from gymnasium import spaces
    from imitation.algorithms.adversarial.airl import AIRL
    from imitation.algorithms.adversarial.gail import GAIL
    from imitation.rewards.reward_nets import BasicRewardNet, BasicShapedRewardNet, NormalizedRewardNet
    from imitation.util.networks import RunningNorm
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecNormalize

    t0 = time.perf_counter()
    method, seed, total = job["method"], int(job["seed"]), int(job["total_timesteps"])
    if method not in METHODS:
        raise ValueError(f"method={method!r}: expected one of {METHODS}")
    algo = cfg.get("algo", "ppo")
    th.manual_seed(seed)
    rng = np.random.default_rng(seed)
    trajs, demo_obs = load_demos(job["demos"])
    venv, horizon, train_env = make_venv(cfg, job, rng)
    if algo == "ppo" and not isinstance(venv.action_space, spaces.Discrete):
        raise ValueError(f"{job['env']}: PPO is only exported for Discrete action spaces (argmax actor)")
    if algo == "sac" and not isinstance(venv.action_space, spaces.Box):
        raise ValueError(f"{job['env']}: SAC needs a Box action space")
    holder: dict = {}
    if algo == "ppo":
        ppo_kwargs = {k: schedule(v, holder, total) for k, v in cfg["ppo_kwargs"].items()}
        agent = PPO("MlpPolicy", venv, seed=seed, verbose=0, device="cpu", **ppo_kwargs)
    elif algo == "sac":
        agent = make_sac(cfg, venv, holder, total, seed)
    else:
        raise ValueError(f"algo={algo!r}: expected 'ppo' or 'sac'")
    holder["agent"] = agent
    hid = tuple(int(h) for h in cfg["disc_hidden_sizes"])
    if method == "gail":
        net = BasicRewardNet(venv.observation_space, venv.action_space, hid_sizes=hid,
                             normalize_input_layer=RunningNorm)
    else:
        net = BasicShapedRewardNet(venv.observation_space, venv.action_space, reward_hid_sizes=hid,
                                   potential_hid_sizes=hid, use_action=not cfg.get("airl_state_only", True),
                                   discount_factor=float(agent.gamma), normalize_input_layer=RunningNorm)
    output_norm = cfg.get("reward_output_norm", "running")
    if output_norm == "running":
        net = NormalizedRewardNet(net, RunningNorm)
    elif output_norm != "none":
        raise ValueError(f"reward_output_norm={output_norm!r}: expected 'running' or 'none'")
    gen_steps = cfg.get("gen_train_timesteps")
    if gen_steps is None and algo == "sac":
        gen_steps = 1000  # irlhf's SAC round
    kwargs = dict(demonstrations=trajs, demo_batch_size=int(cfg["demo_batch_size"]), venv=venv, gen_algo=agent,
                  reward_net=net, n_disc_updates_per_round=int(cfg["n_disc_updates_per_round"]),
                  disc_opt_kwargs={"lr": float(cfg["disc_lr"])}, gen_train_timesteps=gen_steps,
                  gen_replay_buffer_capacity=cfg.get("gen_replay_buffer_capacity"), custom_logger=logger,
                  allow_variable_horizon=horizon == "variable", log_dir=logger.get_dir())
    trainer = (GAIL if method == "gail" else AIRL)(**kwargs)
    holder["trainer"] = trainer
    gen_normalize_reward = bool(cfg.get("gen_normalize_reward", False))
    if gen_normalize_reward:  # irlhf's PPO setting; NOT imitation's behaviour
        agent.set_env(VecNormalize(trainer.venv_train, norm_obs=False, norm_reward=True, gamma=agent.gamma))

    clock, evals = Clock(), []
    on_round = make_round_callback(cfg, job["env"], agent, clock, evals)
    clock.start()
    with contextlib.redirect_stdout(sys.stderr):
        trainer.train(total, callback=on_round)
    train_seconds, train_cpu = clock.wall(), clock.cpu()

    obs = demo_obs[np.random.default_rng(seed).permutation(len(demo_obs))[:512]].astype(np.float32)
    check_diff = None
    if algo == "sac":
        check_diff = export_sac(agent, job["out"], obs)
    else:
        export(agent.policy, job["out"], obs[:256])
    venv.close()
    return {"method": method, "env": job["env"], "algo": algo, "seed": seed, "total_timesteps": total,
            "agent_timesteps": int(agent.num_timesteps), "gen_train_timesteps": int(trainer.gen_train_timesteps),
            "rounds": int(total // trainer.gen_train_timesteps), "n_demo_transitions": int(len(demo_obs)),
            "n_demo_episodes": len(trajs), "horizon": horizon, "train_env": train_env,
            "reward_output_norm": output_norm, "gen_normalize_reward": gen_normalize_reward,
            "train_seconds": train_seconds, "train_cpu_seconds": train_cpu,
            "total_seconds": time.perf_counter() - t0 - clock.eval_wall, "eval_seconds": clock.eval_wall,
            "evals": evals, "check_max_abs_diff": check_diff, "out": job["out"]}


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

    records = []
    with tempfile.TemporaryDirectory(prefix="imitation-adv-") as logdir:
        logger = imit_logger.configure(folder=logdir, format_strs=[])  # no stdout output
        warm = cfg.get("warmup_timesteps")
        if warm and cfg["jobs"]:  # untimed, not reported: pays imports and first-call costs before the timed jobs
            for method in sorted({job["method"] for job in cfg["jobs"]}):
                first = next(job for job in cfg["jobs"] if job["method"] == method)
                run({**first, "total_timesteps": int(warm), "out": f"{logdir}/warmup_{method}.npz"},
                    {**cfg, "eval_every": 0}, logger)
        for job in cfg["jobs"]:
            record = run(job, cfg, logger)
            last = record["evals"][-1]["return"] if record["evals"] else float("nan")
            print(f"imitation {record['method']} {job['env']} seed {job['seed']}: {record['train_seconds']:.0f} s "
                  f"train, last eval return {last:.1f}", file=sys.stderr, flush=True)
            records.append(record)
    print(json.dumps({"imitation_version": md.version("imitation"),
                      "stable_baselines3_version": md.version("stable-baselines3"),
                      "gymnasium_version": md.version("gymnasium"), "seals_version": md.version("seals"),
                      "torch_version": th.__version__, "numpy_version": np.__version__,
                      "python_version": sys.version.split()[0], "torch_threads": th.get_num_threads(),
                      "unmatched": UNMATCHED, "records": records}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
