"""imitation's SQIL and density-based reward, for ``benchmarks/sqil_density_vs_imitation.py``.

Run with the interpreter of the dedicated venv (see setup_imitation_venv.sh), never with the project's own
environment; irlhf is not imported here (the demonstrations are read with plain numpy)::

    benchmarks/.venv-imitation/bin/python benchmarks/imitation_sqil_density_baseline.py --jobs jobs.json

``jobs.json`` (the caller reads ``dqn_kwargs`` from ``irlhf.rl.sb3.hyperparams(env, "dqn", **sqil.DQN_DEFAULTS)``,
``ppo_kwargs`` / ``ppo_n_envs`` from ``hyperparams(env, "ppo")`` and the bandwidth from irlhf's default density
fit on the same demonstrations)::

    {"threads": 1, "eval_env": "CartPole-v1", "eval_every": 5000, "eval_episodes": 10, "eval_seed": 20000,
     "dqn_n_envs": 1,
     "dqn_kwargs": {"learning_rate": 0.0001, "batch_size": 64, "buffer_size": 100000, "learning_starts": 1000,
                    "gamma": 0.99, "target_update_interval": 1000, "train_freq": 256, "gradient_steps": 128,
                    "exploration_fraction": 0.16, "exploration_final_eps": 0.04,
                    "policy_kwargs": {"net_arch": [256, 256]}},
     "ppo_n_envs": 8,
     "ppo_kwargs": {"n_steps": 32, "batch_size": 256, "gae_lambda": 0.8, "gamma": 0.98, "n_epochs": 20,
                    "ent_coef": 0.0, "learning_rate": "lin_0.001", "clip_range": "lin_0.2"},
     "density_horizon": "absorb", "kernel": "gaussian", "warmup_timesteps": {"sqil": 1280, "density": 512},
     "jobs": [{"method": "sqil", "env": "CartPole-v1", "demos": "demos_s0.npz", "total_timesteps": 50000,
               "seed": 0, "out": "sqil_s0.npz"},
              {"method": "density", ..., "bandwidth": 0.50, "out": "density_s0.npz"}, ...]}

Demonstrations (``demos``, .npz written by the caller, the format of ``imitation_adversarial_baseline.py``):
``obs`` (N, obs_dim), ``acts`` (N,), ``next_obs`` (N, obs_dim), ``dones`` (N,) (irlhf's: True only on a real
termination) and ``ep_lens`` (E,). They become imitation ``Trajectory`` objects whose ``terminal`` is the
episode's last ``dones`` flag (so imitation's flattened demonstrations carry exactly irlhf's dones: the CartPole
expert's 500-step episodes are time-limit cuts, never terminal).

Jobs (irlhf's settings wherever imitation has the knob):

* ``sqil``: ``imitation.algorithms.sqil.SQIL(venv, demonstrations, policy="MlpPolicy", rl_algo_class=DQN,
  rl_kwargs=dqn_kwargs | {seed, device="cpu"})`` on ``imitation.util.util.make_vec_env(env, n_envs=dqn_n_envs,
  rng=default_rng(seed))`` (plain CartPole-v1, like irlhf's SQIL; SQIL has no fixed-horizon check), then
  ``trainer.train(total_timesteps=T, callback=<the evaluation callback>)`` (its ``train`` passes extra kwargs on
  to DQN's ``learn``). Half of every batch (``batch_size // 2``) from the demonstrations (reward 1), the rest
  from the agent (reward 0), as irlhf's ``demo_fraction=0.5``.
* ``density``: ``DensityAlgorithm(demonstrations, venv, rng, density_type=STATE_ACTION_DENSITY, kernel="gaussian",
  kernel_bandwidth=<irlhf's Scott bandwidth for these demos>, rl_algo=PPO("MlpPolicy", venv, seed, device="cpu",
  **ppo_kwargs), is_stationary=True, standardise_inputs=True)``; ``trainer.train()`` (the KDE fit), then the
  body of ``trainer.train_policy(T)`` with one more callback: ``rl_algo.set_env(venv_wrapped)``,
  ``rl_algo.learn(T, reset_num_timesteps=False, callback=[trainer.wrapper_callback, <evaluation>])``,
  ``buffering_wrapper.pop_trajectories()`` and the fixed-horizon check (``train_policy`` itself passes its own
  ``callback`` and so takes no other). imitation refuses variable-horizon episodes, so the training env is
  seals' fixed-horizon port ``seals/CartPole-v0`` (``density_horizon="absorb"``, default; imitation's own
  ``seals_cartpole`` benchmark env, via ``imitation_prefs_baseline.make_venv``; ``"variable"``: plain CartPole-v1
  with ``allow_variable_horizon=True``). ``"lin_<x>"`` PPO schedules decay linearly over the whole run
  (``imitation_prefs_baseline.schedule``).

Knobs of irlhf's density learner that imitation cannot match (the record's ``unmatched``): irlhf's absorbing
state for episode ends (imitation: a fixed horizon instead); the reward floor max(log p, f) at 5 bandwidths
(imitation: the raw log-density); PPO reward normalisation (irlhf: ``VecNormalize(norm_reward=True)``;
imitation: none); input scaling (irlhf standardises the observations only and leaves the one-hot action 0 / 1,
imitation's ``StandardScaler`` standardises the one-hot columns too, so the same h is a different kernel width
along the action); irlhf's flag column for the absorbing state (a constant shift of log p); bandwidth rule
(irlhf: Scott's n^(-1/(d+4)) on its inputs; imitation has no rule, only a number: the caller passes irlhf's h).
SQIL: imitation's agent buffer treats a time-limit cut as terminal (``handle_timeout_termination=False``,
irlhf: SB3's timeout handling keeps V(s')); imitation draws demonstration rows with SB3's global-numpy
sampler, irlhf from its own seeded Generator; the two sides run different SB3 versions (imitation pins 2.2.1).

Evaluation during training (both methods): at the first rollout end at or past every multiple of
``eval_every`` env steps (SQIL: the last one after ``learn`` returns, as irlhf's SQIL records its final state
after the last training step), the greedy policy (``predict(deterministic=True)``) plays ``eval_episodes``
episodes of the ORIGINAL env, episode k reset with ``eval_seed + k`` (irlhf's ``evaluate`` protocol). Its
time is excluded from the clock: ``evals`` holds (timesteps, train_seconds, return) with ``train_seconds`` the
wall seconds since ``learn`` started minus earlier evaluations (density: the KDE fit is outside this clock,
as irlhf's density ``seconds`` start after its fit too). ``train_seconds`` / ``train_cpu_seconds``: the
whole learn, evaluations excluded; ``total_seconds``: venv + model + trainer building + fit + learn + export,
evaluations excluded.

Output ``out`` (.npz): the greedy actor's linear layers ``W0, b0, ...`` (torch layout (out, in)), ``activation``
("relu": DQN's ``q_net``, argmax of Q; "tanh": PPO's ``mlp_extractor.policy_net`` then ``action_net``, argmax
of the logits), and ``check_obs`` (up to 256 demonstration observations) / ``check_acts``
(``predict(check_obs, deterministic=True)``) for the caller's numpy rebuild. ``warmup_timesteps``: before the
timed jobs, one untimed, unreported short run per method. Exactly one JSON line is printed to stdout
(imitation's own prints go to stderr): versions, effective settings and one record per job.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time

import numpy as np
import torch as th
from imitation_prefs_baseline import make_venv, read_jobs, schedule, versions  # this directory is on sys.path (a script)
from sqil_density_vs_imitation import settings_of

METHODS = ("sqil", "density")
UNMATCHED = {
    "sqil": {
        "timeout_termination": "imitation's agent buffer: handle_timeout_termination=False (a time-limit cut is "
                               "terminal); irlhf: SB3's timeout handling (V(s') kept at a cut)",
        "demo_sampling": "imitation: SB3 ReplayBuffer.sample on global numpy RNG; irlhf: own seeded Generator",
        "sb3_version": "imitation pins stable-baselines3 2.2.1; irlhf runs the project's SB3",
    },
    "density": {
        "absorbing": "irlhf scores episode ends through an absorbing state; imitation needs a fixed horizon "
                     "(seals/CartPole-v0) instead",
        "reward_floor": "irlhf: max(log p, f), f at 5 bandwidths; imitation: raw log p",
        "reward_normalisation": "irlhf: VecNormalize(norm_reward=True) on PPO; imitation: none",
        "input_scaling": "irlhf standardises observations only (one-hot action 0/1); imitation's StandardScaler "
                         "standardises the one-hot columns too",
        "absorbing_flag_column": "irlhf adds a flag column (constant shift of log p); imitation: none",
        "bandwidth_rule": "irlhf: Scott's rule on its inputs; imitation: a number (irlhf's h is passed)",
        "sb3_version": "imitation pins stable-baselines3 2.2.1; irlhf runs the project's SB3",
    },
}
DQN_REPORTED = ("learning_rate", "batch_size", "buffer_size", "learning_starts", "gamma", "tau",
                "target_update_interval", "gradient_steps", "exploration_fraction", "exploration_initial_eps",
                "exploration_final_eps", "max_grad_norm", "n_envs")
PPO_REPORTED = ("n_steps", "batch_size", "gae_lambda", "gamma", "n_epochs", "ent_coef", "vf_coef", "max_grad_norm",
                "n_envs", "normalize_advantage")


def load_demos(path: str) -> tuple[list, np.ndarray]:
    """imitation ``Trajectory`` list (terminal = the episode's last irlhf ``dones`` flag) and the observations."""
    from imitation.data.types import Trajectory

    with np.load(path) as z:
        obs, acts, next_obs = z["obs"], z["acts"], z["next_obs"]
        dones, lens = z["dones"].astype(bool), z["ep_lens"].astype(int)
    if lens.sum() != len(obs):
        raise ValueError(f"{path}: ep_lens sum {lens.sum()} != {len(obs)} transitions")
    trajs, start = [], 0
    for n in lens:
        end = start + n
        if dones[start:end - 1].any():
            raise ValueError(f"{path}: a done inside an episode (rows {start}..{end - 1})")
        trajs.append(Trajectory(obs=np.concatenate([obs[start:end], next_obs[end - 1:end]]),
                                acts=acts[start:end], infos=None, terminal=bool(dones[end - 1])))
        start = end
    return trajs, obs


def greedy_returns(env_id: str, predict, n: int, seed: int) -> np.ndarray:
    """Returns of ``n`` episodes of ``env_id`` run side by side, episode k reset with ``seed + k``."""
    import gymnasium as gym

    envs = [gym.make(env_id) for _ in range(n)]
    obs = np.stack([env.reset(seed=seed + k)[0] for k, env in enumerate(envs)])
    returns, alive = np.zeros(n), np.ones(n, dtype=bool)
    while alive.any():
        idx = np.flatnonzero(alive)
        acts = np.asarray(predict(obs[idx])).reshape(len(idx), -1)
        for j, k in enumerate(idx):
            act = acts[j] if acts.shape[1] > 1 else acts[j, 0]
            o, r, term, trunc, _ = envs[k].step(act)
            returns[k] += r
            obs[k] = o
            alive[k] = not (term or trunc)
    for env in envs:
        env.close()
    return returns


class Clock:
    """Wall / CPU seconds since ``start()``, minus the evaluations' time."""

    def __init__(self):
        self.t0 = self.c0 = None
        self.eval_wall = self.eval_cpu = 0.0

    def start(self) -> None:
        self.t0, self.c0 = time.perf_counter(), time.process_time()

    def wall(self) -> float:
        return time.perf_counter() - self.t0 - self.eval_wall

    def cpu(self) -> float:
        return time.process_time() - self.c0 - self.eval_cpu


def make_eval_callback(cfg: dict, model, clock: Clock, evals: list, total: int, skip_last: bool):
    """SB3 callback: evaluate the greedy policy at the first rollout end past each multiple of eval_every."""
    from stable_baselines3.common.callbacks import BaseCallback

    every = int(cfg["eval_every"])
    state = {"next": every}

    def evaluate_now(t: int) -> None:
        seconds = clock.wall()
        w, c = time.perf_counter(), time.process_time()
        rets = greedy_returns(cfg["eval_env"], lambda o: model.predict(o, deterministic=True)[0],
                              int(cfg["eval_episodes"]), int(cfg["eval_seed"]))
        evals.append({"timesteps": int(t), "train_seconds": seconds, "return": float(rets.mean()),
                      "return_std": float(rets.std())})
        state["next"] = (t // every + 1) * every
        clock.eval_wall += time.perf_counter() - w
        clock.eval_cpu += time.process_time() - c

    class EvalCallback(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            t = int(self.num_timesteps)
            if every <= 0 or t < state["next"] or (skip_last and t >= total):
                return
            evaluate_now(t)

    def finish(t: int) -> None:  # SQIL: the final state, after the last training step
        if every > 0 and t >= state["next"]:
            evaluate_now(t)

    return EvalCallback(), finish


def export(model, method: str, path: str, obs: np.ndarray) -> None:
    """The greedy actor's linear layers, its activation and predict() on ``obs`` (module docstring)."""
    if method == "sqil":
        layers = [m for m in model.q_net.q_net if isinstance(m, th.nn.Linear)]
        acts = [m for m in model.q_net.q_net if not isinstance(m, th.nn.Linear)]
        activation = "relu"
    else:
        pol = model.policy
        layers = [m for m in pol.mlp_extractor.policy_net if isinstance(m, th.nn.Linear)] + [pol.action_net]
        acts = [m for m in pol.mlp_extractor.policy_net if not isinstance(m, th.nn.Linear)]
        activation = "tanh"
    kind = {th.nn.ReLU: "relu", th.nn.Tanh: "tanh"}
    if any(kind.get(type(m)) != activation for m in acts):
        raise ValueError(f"{method}: unexpected activations {[type(m).__name__ for m in acts]}")
    arrays = {}
    for i, layer in enumerate(layers):
        arrays[f"W{i}"] = layer.weight.detach().cpu().numpy()
        arrays[f"b{i}"] = layer.bias.detach().cpu().numpy()
    pred, _ = model.predict(obs, deterministic=True)
    np.savez(path, check_obs=obs, check_acts=np.asarray(pred), activation=np.array(activation), **arrays)


def run(job: dict, cfg: dict, logger) -> dict:
    from imitation.algorithms.density import DensityAlgorithm, DensityType
    from imitation.algorithms.sqil import SQIL
    from imitation.util.util import make_vec_env
    from stable_baselines3 import DQN, PPO
    from stable_baselines3.common.callbacks import CallbackList

    method, seed, total = job["method"], int(job["seed"]), int(job["total_timesteps"])
    if method not in METHODS:
        raise ValueError(f"method={method!r}: expected one of {METHODS}")
    th.manual_seed(seed)
    rng = np.random.default_rng(seed)
    trajs, demo_obs = load_demos(job["demos"])
    clock, evals = Clock(), []
    t_build, c_build = time.perf_counter(), time.process_time()
    extra: dict = {}
    if method == "sqil":
        venv = make_vec_env(job["env"], n_envs=int(cfg["dqn_n_envs"]), rng=rng)
        horizon, train_env = "variable", job["env"]
        rl_kwargs = {**cfg["dqn_kwargs"], "seed": seed, "device": "cpu", "verbose": 0}
        trainer = SQIL(venv=venv, demonstrations=trajs, policy="MlpPolicy", custom_logger=logger,
                       rl_algo_class=DQN, rl_kwargs=rl_kwargs)
        model = trainer.rl_algo
        callback, finish = make_eval_callback(cfg, model, clock, evals, total, skip_last=True)
        fit_seconds = 0.0
        settings = settings_of(model, DQN_REPORTED)  # before learn: schedules at their start values
        clock.start()
        with contextlib.redirect_stdout(sys.stderr):
            trainer.train(total_timesteps=total, callback=callback)
            finish(int(model.num_timesteps))
        settings["expert_rows_per_batch"] = int(model.batch_size) - int(model.batch_size) // 2  # util.split_in_half
        settings.update(time_limit_cut="terminal", train_env=train_env)
    else:
        horizon_cfg = {"horizon": cfg.get("density_horizon", "absorb"), "n_envs": int(cfg["ppo_n_envs"])}
        venv, horizon, train_env = make_venv(horizon_cfg, job, rng)
        holder: dict = {}
        ppo_kwargs = {k: schedule(v, holder, total) for k, v in cfg["ppo_kwargs"].items()}
        model = PPO("MlpPolicy", venv, seed=seed, verbose=0, device="cpu", **ppo_kwargs)
        holder["agent"] = model
        trainer = DensityAlgorithm(demonstrations=trajs, venv=venv, rng=rng,
                                   density_type=DensityType.STATE_ACTION_DENSITY, kernel=cfg.get("kernel", "gaussian"),
                                   kernel_bandwidth=float(job["bandwidth"]), rl_algo=model, is_stationary=True,
                                   standardise_inputs=True, custom_logger=logger,
                                   allow_variable_horizon=horizon == "variable")
        t_fit = time.perf_counter()
        trainer.train()  # the KDE fit
        fit_seconds = time.perf_counter() - t_fit
        callback, _ = make_eval_callback(cfg, model, clock, evals, total, skip_last=False)
        settings = settings_of(model, PPO_REPORTED)  # before learn: schedules at their start values
        clock.start()
        with contextlib.redirect_stdout(sys.stderr):  # = trainer.train_policy(total), plus the evaluation callback
            model.set_env(trainer.venv_wrapped)
            model.learn(total, reset_num_timesteps=False, callback=CallbackList([trainer.wrapper_callback, callback]))
            _, ep_lens = trainer.buffering_wrapper.pop_trajectories()
            trainer._check_fixed_horizon(ep_lens)
        settings.update(kernel=trainer.kernel, kernel_bandwidth=trainer.kernel_bandwidth,
                        standardise_inputs="all columns" if trainer.standardise else "none",
                        density_type=trainer.density_type.name.lower().removesuffix("_density"),
                        is_stationary=trainer.is_stationary, normalize_reward=False, absorbing=False,
                        floor_distance=None, train_env=train_env)
        extra["kde_rows"] = int(len(trainer.transitions[None]))
    train_seconds, train_cpu = clock.wall(), clock.cpu()
    obs = demo_obs[np.random.default_rng(seed).permutation(len(demo_obs))[:256]].astype(np.float32)
    export(model, method, job["out"], obs)
    total_seconds = time.perf_counter() - t_build - clock.eval_wall
    total_cpu = time.process_time() - c_build - clock.eval_cpu
    venv.close()
    return {"method": method, "env": job["env"], "seed": seed, "total_timesteps": total,
            "agent_timesteps": int(model.num_timesteps), "n_demo_transitions": int(len(demo_obs)),
            "n_demo_episodes": len(trajs), "horizon": horizon, "train_env": train_env, "settings": settings,
            "fit_seconds": fit_seconds, "train_seconds": train_seconds, "train_cpu_seconds": train_cpu,
            "total_seconds": total_seconds, "total_cpu_seconds": total_cpu, "eval_seconds": clock.eval_wall,
            "evals": evals, "out": job["out"], **extra}


def main(argv=None) -> int:
    cfg = read_jobs(__doc__.split("\n")[0], argv)
    from imitation.util import logger as imit_logger

    records = []
    with tempfile.TemporaryDirectory(prefix="imitation-sqil-density-") as logdir:
        logger = imit_logger.configure(folder=logdir, format_strs=[])  # no stdout output
        warm = cfg.get("warmup_timesteps") or {}
        for method in sorted({job["method"] for job in cfg["jobs"]}):  # untimed, not reported
            if warm.get(method):
                first = next(job for job in cfg["jobs"] if job["method"] == method)
                run({**first, "total_timesteps": int(warm[method]), "out": f"{logdir}/warmup_{method}.npz"},
                    {**cfg, "eval_every": 0}, logger)
        for job in cfg["jobs"]:
            record = run(job, cfg, logger)
            last = record["evals"][-1]["return"] if record["evals"] else float("nan")
            print(f"imitation {record['method']} {job['env']} seed {job['seed']}: {record['train_seconds']:.0f} s "
                  f"train, last eval return {last:.1f}", file=sys.stderr, flush=True)
            records.append(record)
    print(json.dumps({**versions("scikit-learn"), "unmatched": UNMATCHED, "records": records}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
