"""imitation's preference comparisons (deep RL from preferences), for ``benchmarks/pref_label_efficiency.py``.

Run with the interpreter of the dedicated venv (see setup_imitation_venv.sh), never with the project's own
environment; irlhf is not imported here::

    benchmarks/.venv-imitation/bin/python benchmarks/imitation_prefs_baseline.py --jobs jobs.json

``jobs.json`` (the caller reads ``<algo>_kwargs`` / ``n_envs`` from ``irlhf.rl.sb3.hyperparams(env, algo)``;
``algo`` is ``"ppo"`` (default) or ``"sac"``, which reads ``"sac_kwargs"`` instead, e.g. Pendulum-v1:
``"n_envs": 1, "algo": "sac", "sac_kwargs": {"learning_rate": 0.001}, "relabel": "imitation"``)::

    {"threads": 1, "n_envs": 8, "algo": "ppo",
     "ppo_kwargs": {"n_steps": 32, "batch_size": 256, "gae_lambda": 0.8, "gamma": 0.98, "n_epochs": 20,
                    "ent_coef": 0.0, "learning_rate": "lin_0.001", "clip_range": "lin_0.2"},
     "fragment_length": 25, "rounds": 10, "initial_comparison_frac": 0.25, "schedule_tau": 0.1,
     "comparison_queue_size": null, "reward_hidden_sizes": [64, 64], "reward_epochs": 3,
     "reward_batch_size": 32, "reward_lr": 1e-3, "initial_epoch_multiplier": 200.0, "exploration_frac": 0.0,
     "temperature": 0.0, "horizon": "absorb",
     "jobs": [{"env": "CartPole-v1", "total_timesteps": 50000, "total_comparisons": 200, "seed": 0,
               "out": "weights.npz"}, ...]}

Per job (as in imitation's preference-comparisons tutorial, with our benchmark's settings where a knob exists):

* env: ``imitation.util.util.make_vec_env(env, n_envs, rng=default_rng(seed))`` (DummyVecEnv). Envs that never
  terminate (``NATIVE_FIXED_HORIZON``: Pendulum-v1, 200-step TimeLimit only) already have the fixed horizon
  imitation requires: they are used as they are, no wrapper and no seals port (record: ``horizon="native"``).
  For the others, imitation refuses
  variable-horizon episodes unless told otherwise, and in CartPole-v1 every 25-step fragment *inside* an
  episode earns exactly 25, so all labels would be ties. ``horizon="absorb"`` (default; what
  ``pref_label_efficiency.py`` passes) means "fixed horizon, as imitation's docs and benchmarks do it": where
  seals has a fixed-horizon port of the env (``SEALS_FIXED_HORIZON``: CartPole-v1 -> ``seals/CartPole-v0``,
  imitation's own ``seals_cartpole`` benchmark env: never terminates, 500 steps, reward 1 while pole and cart
  are within CartPole-v1's termination thresholds, else 0; same spaces and dynamics) imitation trains on that
  (record: ``horizon="seals"``, ``train_env``); otherwise each env is wrapped in
  ``seals.util.AbsorbAfterDoneWrapper`` (after termination: the last observation again, reward 0) and
  ``TimeLimit(max_episode_steps)`` (record: ``horizon="absorb_wrapper"``; ``"absorb_wrapper"`` in the job file
  forces it). The exported policy is always scored by the caller on the ORIGINAL env (gymnasium CartPole-v1).
  ``horizon="variable"`` is imitation's own ``cartpole`` named config (plain CartPole-v1,
  ``allow_variable_horizon=True``).
* reward: ``BasicRewardNet(obs, act, hid_sizes, normalize_input_layer=RunningNorm)`` (state + action, ReLU)
  wrapped in ``NormalizedRewardNet(net, RunningNorm)`` (``reward_output_norm="running"``, default: the default of
  imitation's ``reward`` ingredient, ``normalize_output_layer=RunningNorm``, used by its
  ``train_preference_comparisons`` script; the agent gets ``predict_processed``, the preference model the raw
  net; ``"none"``: no output normalisation, the earlier setting); ``PreferenceModel(net)`` (Bradley-Terry on
  fragment sums, no noise, discount 1); ``BasicRewardTrainer(CrossEntropyRewardLoss(), epochs, batch_size, lr)``
  (AdamW).
* labels: ``SyntheticGatherer(temperature, sample=False)``: temperature 0 is the deterministic oracle
  ``(sign(R1 - R2) + 1) / 2`` (0.5 on ties), like irlhf's ``make_labeller("oracle")``.
* fragments: ``RandomFragmenter(warning_threshold=0)`` (uniform, no active selection). An iteration whose
  share rounds to 0 pairs adds nothing (imitation 1.0.1 itself raises there; see ``zero_safe_parts``).
* agent: SB3 ``PPO("MlpPolicy", venv, seed=seed, **ppo_kwargs)``; ``"lin_<x>"`` schedules decay linearly over
  the WHOLE run (a closure over ``num_timesteps``), because imitation calls ``learn()`` once per iteration with
  ``reset_num_timesteps=False`` and SB3's own progress would restart each iteration.
  ``AgentTrainer(agent, net, venv, exploration_frac)``.
* agent, ``algo="sac"`` (Box actions; Pendulum-v1): SB3 ``SAC("MlpPolicy", venv, seed=seed, device="cpu",
  **sac_kwargs)`` (irlhf's Pendulum setting: SB3 defaults but learning_rate 1e-3, 1 env), in the same
  ``AgentTrainer``. The agent trains on ``RewardVecEnvWrapper``'s rewards, i.e. the reward net AT COLLECTION
  TIME; imitation's ``PreferenceComparisons`` itself never touches an off-policy agent's replay buffer after a
  refit. What imitation offers for that is ``ReplayBufferRewardWrapper`` (``replay_buffer_class``), which its
  ``train_preference_comparisons`` script always installs for off-policy agents (``rl`` ingredient,
  ``_maybe_add_relabel_buffer``, reward ``predict_processed(update_stats=False)``): every sampled SAC batch is
  relabelled with the CURRENT reward net, so stale rewards are never used (irlhf instead rewrites the stored
  rewards after each refit, as PEBBLE does; between refits both use the same net, so the effect matches).
  ``relabel`` in the job file: ``"imitation"`` (default; what the caller passes) is exactly that script's
  setting. Caveat, found in SB3 2.2.1's ``OffPolicyAlgorithm._sample_action``: SAC's buffer stores actions
  SCALED to [-1, 1], and imitation's wrapper hands them to the reward net as they are, while the net was fit
  on env actions (Pendulum: [-2, 2], halved in relabelling; Pendulum's true reward depends little on the
  action, -0.001 u^2, but the net's action input is still off by 2x); irlhf unscales before relabelling.
  ``"unscaled"`` does the same with the actions unscaled to the env bounds first (not imitation's behaviour;
  for a diagnosis), ``"none"``: no relabelling (collection-time rewards only, the plain ``AgentTrainer``).
* ``PreferenceComparisons(..., num_iterations=rounds - 1, fragment_length, transition_oversampling=1,
  initial_comparison_frac, initial_epoch_multiplier, comparison_queue_size,
  query_schedule=lambda t: tau / (t + tau))`` (irlhf's label rate tau / (T + tau), T as a fraction of
  training). imitation gathers ``rounds`` times (the initial share, then ``rounds - 1`` iterations) and trains
  the agent after each, i.e. ``rounds`` phases of ``total_timesteps // (rounds - 1)`` steps; so
  ``train(total_timesteps * (rounds - 1) // rounds, total_comparisons)`` is called to keep the agent's steps at
  about ``total_timesteps`` (the record has the real count, ``agent_timesteps``: SB3 rounds each phase up to
  a multiple of n_steps * n_envs).

Known limitation (diagnosed on CartPole-v1, seed 0, 200 comparisons, zoo PPO settings): imitation's fixed
horizon, not its reward model, is what fails at small budgets. The same PPO trained on the TRUE reward for 20k
steps scores 479.7 on plain CartPole-v1 but 10.0 with the absorbing wrapper and 12.4 on seals/CartPole-v0 (a
fixed 500-step episode gives PPO ~40 episode starts in 20k steps, and an untrained argmax actor pushes one way,
~10 steps: below a random policy's ~22); at 100k true-reward steps: 16.2 (absorbing wrapper) vs 243.5 (seals).
And 90-97 % of the uniformly sampled 25-step fragments lie after the pole has fallen (true return 0), so 80-93 %
of the labels are ties. With 20k steps both fixed-horizon settings score ~10, with or without output
normalisation; the learned reward did rank live steps above absorbed ones (absorbing wrapper, raw -0.02 vs
-0.15; normalised 1.45 vs -0.41), so the "absorbing state is attractive" explanation was ruled out there.
At 100k steps on seals/CartPole-v0 (where PPO on the true reward reaches 243.5) the run still scored 9.8:
with 80 % ties the reward model had flipped (fallen states above upright ones, normalised 0.25 vs -0.09; final
reward loss 10.5, accuracy 0.47). No setting tried here beats a random policy at these label budgets.

Output ``out`` (.npz): the final PPO actor ``W0, b0, W1, b1, ...`` (mlp_extractor.policy_net linear layers, then
action_net; tanh hidden layers; torch layout (out, in)) and ``check_obs`` / ``check_acts``: up to 256
observations from the labelled fragments and ``agent.policy.predict(obs, deterministic=True)`` on them.
SAC: ``W0, b0, ...`` are ``actor.latent_pi``'s linear layers (ReLU) then ``actor.mu``, plus ``low`` / ``high``
(the action bounds); the deterministic action is ``low + (tanh(mu(latent_pi(obs))) + 1) / 2 * (high - low)``
(SB3 2.2.1: squashed Gaussian mode, then ``unscale_action``; FlattenExtractor, no observation normalisation;
gSDE is refused). ``check_obs`` are up to 512 observations drawn from both sides of the labelled pairs, and
the numpy rebuild (``sac_numpy_actions``) is asserted here to match ``model.predict(obs, deterministic=True)``
within 1e-5 (record: ``check_max_abs_diff``).

Exactly one JSON line is printed to stdout (imitation's own prints go to stderr): versions and one record per
job with ``seconds`` (wall, building + training, perf_counter), ``cpu_seconds``, ``algo``, ``relabel`` (SAC),
``agent_timesteps``,
``comparisons`` (the dataset size), the final reward loss / accuracy and ``out``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
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
from stable_baselines3.common.torch_layers import FlattenExtractor


def schedule(value, holder: dict, total: int):
    """``"lin_<x>"`` -> x * (1 - agent steps / total), over the whole run; other values unchanged."""
    if isinstance(value, str) and value.startswith("lin_"):
        start = float(value[4:])
        def value_at(_progress: float) -> float:
            steps = holder["agent"].num_timesteps if "agent" in holder else 0  # 0 while PPO is being built
            return start * max(0.0, 1.0 - steps / total)

        return value_at
    return value


def zero_safe_parts():
    """imitation 1.0.1 fails on an iteration whose share of the budget rounds to 0 pairs (the fragmenter finds
    no trajectories, the gatherer and the dataset cannot unpack an empty list); such an iteration should just
    add nothing, which these thin subclasses do (nothing else changes)."""
    from imitation.algorithms import preference_comparisons as pc

    class Fragmenter(pc.RandomFragmenter):
        def __call__(self, trajectories, fragment_length, num_pairs):
            return [] if num_pairs == 0 else super().__call__(trajectories, fragment_length, num_pairs)

    class Gatherer(pc.SyntheticGatherer):
        def __call__(self, fragment_pairs):
            return np.zeros(0, dtype=np.float32) if len(fragment_pairs) == 0 else super().__call__(fragment_pairs)

    class Dataset(pc.PreferenceDataset):
        def push(self, fragments, preferences):
            if len(fragments):
                super().push(fragments, preferences)

    return Fragmenter, Gatherer, Dataset


# seals' fixed-horizon ports of Gym environments (imitation's own benchmark environments, e.g. its
# ``seals_cartpole`` config): never terminate, TimeLimit of the original's max_episode_steps, same spaces and
# dynamics; CartPole's reward is 1 while the pole and cart are within the original's termination thresholds.
SEALS_FIXED_HORIZON = {"CartPole-v1": "seals/CartPole-v0", "MountainCar-v0": "seals/MountainCar-v0"}
# Gymnasium envs that never terminate (only their TimeLimit truncates), i.e. already fixed-horizon.
NATIVE_FIXED_HORIZON = {"Pendulum-v1"}
HORIZONS = ("absorb", "absorb_wrapper", "variable")


def make_venv(cfg: dict, job: dict, rng):
    """(venv, horizon actually used: "native" / "seals" / "absorb_wrapper" / "variable", env id trained on)."""
    import gymnasium as gym
    from imitation.util.util import make_vec_env

    horizon = cfg.get("horizon", "absorb")
    if horizon not in HORIZONS:
        raise ValueError(f"horizon={horizon!r}: expected one of {HORIZONS}")
    env_id, post = job["env"], None
    if horizon == "absorb" and env_id in NATIVE_FIXED_HORIZON:
        horizon = "native"  # never terminates: fixed horizon as is, no wrapper, no seals port
    elif horizon == "absorb" and env_id in SEALS_FIXED_HORIZON:
        importlib.import_module("seals")  # registers the seals/... ids

        horizon, env_id = "seals", SEALS_FIXED_HORIZON[env_id]
    elif horizon in ("absorb", "absorb_wrapper"):
        from seals.util import AbsorbAfterDoneWrapper

        horizon = "absorb_wrapper"
        steps = gym.spec(env_id).max_episode_steps
        if not steps:
            raise ValueError(f"{env_id}: no max_episode_steps, cannot fix the horizon")
        post = [lambda env, _i: gym.wrappers.TimeLimit(AbsorbAfterDoneWrapper(env), steps)]
    return make_vec_env(env_id, n_envs=int(cfg["n_envs"]), rng=rng, post_wrappers=post), horizon, env_id


def sac_numpy_actions(arrays: dict, obs: np.ndarray) -> np.ndarray:
    """The deterministic SAC action rebuilt in numpy from ``export_sac``'s arrays: ReLU MLP (latent_pi), linear
    mu, tanh, then unscaled from [-1, 1] to [low, high] (SB3 2.2.1 ``SACPolicy.predict``, no obs normalisation)."""
    n = sum(1 for k in arrays if k.startswith("W"))
    h = np.asarray(obs, dtype=np.float64)
    for i in range(n):
        h = h @ np.asarray(arrays[f"W{i}"], dtype=np.float64).T + arrays[f"b{i}"]
        if i < n - 1:
            h = np.maximum(h, 0.0)
    low, high = np.asarray(arrays["low"], np.float64), np.asarray(arrays["high"], np.float64)
    return low + 0.5 * (np.tanh(h) + 1.0) * (high - low)


def export_sac(model, path: str, obs: np.ndarray) -> float:
    """Save the SAC actor (``actor.latent_pi`` Linear layers then ``actor.mu``; torch layout (out, in)), the
    action bounds and ``model.predict(obs, deterministic=True)`` on ``obs``; assert that the numpy rebuild
    matches predict (max abs difference < 1e-5) and return that difference."""
    actor = model.policy.actor
    if actor.use_sde or not isinstance(actor.features_extractor, FlattenExtractor):
        raise ValueError("only the default SAC actor (no gSDE, FlattenExtractor) is exported")
    acts_fn = [m for m in actor.latent_pi if not isinstance(m, th.nn.Linear)]
    if any(not isinstance(m, th.nn.ReLU) for m in acts_fn):
        raise ValueError(f"SAC latent_pi activations {acts_fn}: only ReLU is rebuilt")
    layers = [m for m in actor.latent_pi if isinstance(m, th.nn.Linear)] + [actor.mu]
    arrays = {}
    for i, layer in enumerate(layers):
        arrays[f"W{i}"] = layer.weight.detach().cpu().numpy()
        arrays[f"b{i}"] = layer.bias.detach().cpu().numpy()
    arrays["low"], arrays["high"] = model.action_space.low, model.action_space.high
    acts, _ = model.predict(obs, deterministic=True)
    diff = float(np.max(np.abs(sac_numpy_actions(arrays, obs) - acts)))
    assert diff < 1e-5, f"numpy SAC actor differs from predict(deterministic=True) by {diff}"
    np.savez(path, check_obs=obs, check_acts=np.asarray(acts), **arrays)
    return diff


RELABELS = ("imitation", "unscaled", "none")


def make_sac(cfg: dict, venv, net, seed: int, holder: dict, total: int):
    """SB3 SAC with imitation's replay-buffer relabelling (see the module docstring, ``relabel``)."""
    from imitation.policies.replay_buffer_wrapper import ReplayBufferRewardWrapper
    from stable_baselines3 import SAC
    from stable_baselines3.common.buffers import ReplayBuffer

    relabel = cfg.get("relabel", "imitation")
    if relabel not in RELABELS:
        raise ValueError(f"relabel={relabel!r}: expected one of {RELABELS}")
    kwargs = {k: schedule(v, holder, total) for k, v in cfg["sac_kwargs"].items()}
    if relabel != "none":
        low, high = venv.action_space.low, venv.action_space.high

        def reward_fn(state, action, next_state, done):
            if relabel == "unscaled":  # SAC's buffer holds actions scaled to [-1, 1]; the net was fit on env actions
                action = low + 0.5 * (action + 1.0) * (high - low)
            return net.predict_processed(state, action, next_state, done, update_stats=False)

        # as imitation's train_preference_comparisons script (rl ingredient, _maybe_add_relabel_buffer) does
        kwargs.update(replay_buffer_class=ReplayBufferRewardWrapper,
                      replay_buffer_kwargs={"replay_buffer_class": ReplayBuffer, "reward_fn": reward_fn})
    return SAC("MlpPolicy", venv, seed=seed, verbose=0, device="cpu", **kwargs), relabel


def run(job: dict, cfg: dict, logger) -> dict:
    from gymnasium import spaces
    from imitation.algorithms import preference_comparisons as pc
    from imitation.rewards.reward_nets import BasicRewardNet, NormalizedRewardNet
    from imitation.util.networks import RunningNorm
    from stable_baselines3 import PPO

    seed, total, n_comp = int(job["seed"]), int(job["total_timesteps"]), int(job["total_comparisons"])
    rounds = int(cfg["rounds"])
    if rounds < 2:
        raise ValueError("rounds must be >= 2 (the initial share plus at least one iteration)")
    th.manual_seed(seed)
    rng = np.random.default_rng(seed)
    venv, horizon, train_env = make_venv(cfg, job, rng)
    algo = cfg.get("algo", "ppo")
    if algo == "ppo" and not isinstance(venv.action_space, spaces.Discrete):
        raise ValueError(f"{job['env']}: PPO is only exported for Discrete action spaces (argmax actor)")
    if algo == "sac" and not isinstance(venv.action_space, spaces.Box):
        raise ValueError(f"{job['env']}: SAC needs a Box action space")
    if algo not in ("ppo", "sac"):
        raise ValueError(f"algo={algo!r}: expected 'ppo' or 'sac'")
    net = BasicRewardNet(venv.observation_space, venv.action_space,
                         hid_sizes=tuple(cfg["reward_hidden_sizes"]), normalize_input_layer=RunningNorm)
    output_norm = cfg.get("reward_output_norm", "running")
    if output_norm == "running":  # imitation's reward ingredient default (normalize_output_layer=RunningNorm)
        net = NormalizedRewardNet(net, RunningNorm)
    elif output_norm != "none":
        raise ValueError(f"reward_output_norm={output_norm!r}: expected 'running' or 'none'")
    preference_model = pc.PreferenceModel(net)
    trainer = pc.BasicRewardTrainer(preference_model=preference_model, loss=pc.CrossEntropyRewardLoss(),
                                    epochs=int(cfg["reward_epochs"]), batch_size=int(cfg["reward_batch_size"]),
                                    lr=float(cfg["reward_lr"]), rng=rng)
    Fragmenter, Gatherer, Dataset = zero_safe_parts()
    fragmenter = Fragmenter(warning_threshold=0, rng=rng)
    gatherer = Gatherer(temperature=float(cfg["temperature"]), sample=False, rng=rng)
    holder: dict = {}
    relabel = None
    if algo == "sac":
        agent, relabel = make_sac(cfg, venv, net, seed, holder, total)
    else:
        ppo_kwargs = {k: schedule(v, holder, total) for k, v in cfg["ppo_kwargs"].items()}
        agent = PPO("MlpPolicy", venv, seed=seed, verbose=0, device="cpu", **ppo_kwargs)
    holder["agent"] = agent
    generator = pc.AgentTrainer(algorithm=agent, reward_fn=net, venv=venv,
                                exploration_frac=float(cfg["exploration_frac"]), rng=rng)
    tau = float(cfg["schedule_tau"])
    queue = cfg.get("comparison_queue_size")
    prefs = pc.PreferenceComparisons(
        generator, net, num_iterations=rounds - 1, fragmenter=fragmenter, preference_gatherer=gatherer,
        reward_trainer=trainer, comparison_queue_size=None if queue is None else int(queue),
        fragment_length=int(cfg["fragment_length"]), transition_oversampling=1,
        initial_comparison_frac=float(cfg["initial_comparison_frac"]),
        initial_epoch_multiplier=float(cfg["initial_epoch_multiplier"]), custom_logger=logger,
        allow_variable_horizon=horizon == "variable", query_schedule=lambda t: tau / (t + tau))
    prefs.dataset = Dataset(max_size=prefs.dataset.max_size)
    with contextlib.redirect_stdout(sys.stderr):  # "Query schedule: [...]"
        metrics = prefs.train(total_timesteps=total * (rounds - 1) // rounds, total_comparisons=n_comp)
    obs = np.concatenate([f.obs for f in [*prefs.dataset.fragments1, *prefs.dataset.fragments2]])
    check_diff = None
    if algo == "sac":
        obs = obs[np.random.default_rng(seed).permutation(len(obs))[:512]].astype(np.float32)
        check_diff = export_sac(agent, job["out"], obs)  # asserts the numpy rebuild matches predict()
    else:
        export(agent.policy, job["out"], obs[:256].astype(np.float32))  # as for the BC baseline
    venv.close()
    return {"env": job["env"], "algo": algo, "relabel": relabel, "check_max_abs_diff": check_diff,
            "seed": seed, "total_timesteps": total, "total_comparisons": n_comp,
            "agent_timesteps": int(agent.num_timesteps), "comparisons": len(prefs.dataset), "horizon": horizon,
            "train_env": train_env, "reward_output_norm": output_norm,
            "reward_loss": float(metrics["reward_loss"]), "reward_accuracy": float(metrics["reward_accuracy"]),
            "out": job["out"]}


def versions(*packages: str) -> dict:
    """The versions every imitation-side record carries, plus those of ``packages`` (distribution names)."""
    names = ("imitation", "stable-baselines3", "gymnasium", "seals", *packages)
    return {**{f"{name.replace('-', '_')}_version": md.version(name) for name in names},
            "torch_version": th.__version__, "numpy_version": np.__version__,
            "python_version": sys.version.split()[0], "torch_threads": th.get_num_threads()}


def read_jobs(description: str, argv=None) -> dict:
    """``--jobs FILE`` -> its JSON config, with torch's threads set from it and warnings / logging silenced (the
    imitation-side scripts print one JSON line to stdout)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--jobs", required=True, help="JSON file, see the module docstring")
    args = parser.parse_args(argv)
    with open(args.jobs) as f:
        cfg = json.load(f)
    th.set_num_threads(int(cfg.get("threads", 1)))
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    return cfg


def main(argv=None) -> int:
    cfg = read_jobs(__doc__.split("\n")[0], argv)
    from imitation.util import logger as imit_logger

    records = []
    with tempfile.TemporaryDirectory(prefix="imitation-prefs-") as logdir:
        logger = imit_logger.configure(folder=logdir, format_strs=[])  # no stdout output
        for job in cfg["jobs"]:
            t0, c0 = time.perf_counter(), time.process_time()
            record = run(job, cfg, logger)
            record.update(seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0)
            print(f"imitation {job['env']} {job['total_comparisons']} comparisons seed {job['seed']}: "
                  f"{record['seconds']:.0f} s", file=sys.stderr, flush=True)
            records.append(record)
    print(json.dumps({**versions(), "records": records}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
