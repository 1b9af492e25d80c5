"""Stable-Baselines3 adapters: model factories with tuned defaults, a callable policy wrapper, BC warm start.

    model = make_model("ppo", "CartPole-v1", seed=0)           # SB3 PPO on make_vec_env, zoo defaults
    model.learn(hyperparams("CartPole-v1", "ppo")["n_timesteps"])
    policy = SB3Policy(model)                                  # policy(obs_batch) -> actions (deterministic)
    ppo = ppo_from_bc("CartPole-v1", bc_result.policy)         # PPO whose actor equals the BC policy
    bar = timestep_bar(model, 40_000, desc="ppo")              # total: the steps learn(40_000) really takes
    advance(bar, model.num_timesteps)                          # from a callback; never past the total

``DEFAULT_HYPERPARAMS[(env_id, algo)]`` holds ``n_timesteps`` and ``n_envs`` (how long / how many
sub-envs to train with) and the algorithm's keyword arguments; other pairs fall back to SB3's defaults
with 1e5 steps on one env. Linear schedules are written ``"lin_<start>"`` (as in rl-baselines3-zoo) so
the dicts stay JSON; ``make_model`` turns them into ``LinearSchedule``s.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator
from typing import Annotated, Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import DQN, PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.type_aliases import TrainFrequencyUnit
from stable_baselines3.common.utils import LinearSchedule
from torch import nn
from tqdm.auto import tqdm

from irlhf.core.config import Check
from irlhf.core.errors import ValidationError, describe
from irlhf.envs.gym import make_env
from irlhf.envs.spaces import as_batch
from irlhf.nn.mlp import ACTIVATIONS
from irlhf.nn.policies import MLPPolicy, Policy

#: A config field of SB3 arguments (overrides of ``hyperparams``), declared once for every learner's Config.
RlKwargs = Annotated[dict, Check(lambda value: isinstance(value, dict), "a dict of SB3 arguments")]

ALGOS: tuple[str, ...] = ("ppo", "dqn", "sac")
ALGO_CLASSES: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "dqn": DQN, "sac": SAC}

# Defaults from rl-baselines3-zoo (github.com/DLR-RM/rl-baselines3-zoo, hyperparams/{ppo,dqn,sac}.yml;
# ppo.yml at commit 208b6fd, dqn.yml at ce95481, sac.yml at c94924e). LunarLander-v3 uses the zoo's
# LunarLander-v2 entries (same dynamics). Settings that need VecNormalize (`normalize: true`: zoo's ppo
# Acrobot-v1 and MountainCar-v0) are left out: Acrobot-v1/ppo below is the zoo entry without
# normalisation, and MountainCar-v0 has only dqn (zoo's ppo there depends on it; use dqn).
DEFAULT_HYPERPARAMS: dict[tuple[str, str], dict[str, Any]] = {
    ("CartPole-v1", "ppo"): dict(
        n_timesteps=100_000, n_envs=8, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
        ent_coef=0.0, learning_rate="lin_0.001", clip_range="lin_0.2"),
    ("CartPole-v1", "dqn"): dict(
        n_timesteps=50_000, n_envs=1, learning_rate=2.3e-3, batch_size=64, buffer_size=100_000,
        learning_starts=1000, gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128,
        exploration_fraction=0.16, exploration_final_eps=0.04, policy_kwargs=dict(net_arch=[256, 256])),
    ("Acrobot-v1", "ppo"): dict(  # zoo adds VecNormalize (normalize: true); left out here
        n_timesteps=1_000_000, n_envs=16, n_steps=256, gae_lambda=0.94, gamma=0.99, n_epochs=4, ent_coef=0.0),
    ("Acrobot-v1", "dqn"): dict(
        n_timesteps=100_000, n_envs=1, learning_rate=6.3e-4, batch_size=128, buffer_size=50_000,
        learning_starts=0, gamma=0.99, target_update_interval=250, train_freq=4, gradient_steps=-1,
        exploration_fraction=0.12, exploration_final_eps=0.1, policy_kwargs=dict(net_arch=[256, 256])),
    ("MountainCar-v0", "dqn"): dict(
        n_timesteps=120_000, n_envs=1, learning_rate=4e-3, batch_size=128, buffer_size=10_000,
        learning_starts=1000, gamma=0.98, target_update_interval=600, train_freq=16, gradient_steps=8,
        exploration_fraction=0.2, exploration_final_eps=0.07, policy_kwargs=dict(net_arch=[256, 256])),
    ("Pendulum-v1", "sac"): dict(n_timesteps=20_000, n_envs=1, learning_rate=1e-3),
    ("Pendulum-v1", "ppo"): dict(
        n_timesteps=100_000, n_envs=4, n_steps=1024, gae_lambda=0.95, gamma=0.9, n_epochs=10, ent_coef=0.0,
        learning_rate=1e-3, clip_range=0.2, use_sde=True, sde_sample_freq=4),
    ("LunarLander-v3", "ppo"): dict(
        n_timesteps=1_000_000, n_envs=16, n_steps=1024, batch_size=64, gae_lambda=0.98, gamma=0.999,
        n_epochs=4, ent_coef=0.01),
    ("LunarLander-v3", "dqn"): dict(
        n_timesteps=100_000, n_envs=1, learning_rate=6.3e-4, batch_size=128, buffer_size=50_000,
        learning_starts=0, gamma=0.99, target_update_interval=250, train_freq=4, gradient_steps=-1,
        exploration_fraction=0.12, exploration_final_eps=0.1, policy_kwargs=dict(net_arch=[256, 256])),
    # zoo's MuJoCo defaults (Hopper-v3 there; v5 has the same dynamics and observations): SB3's SAC otherwise
    ("Hopper-v5", "sac"): dict(n_timesteps=1_000_000, n_envs=1, learning_starts=10_000),
}
#: Anything else: SB3's own defaults, 1e5 steps on one env.
FALLBACK_HYPERPARAMS: dict[str, Any] = dict(n_timesteps=100_000, n_envs=1)
#: The algorithm to reach for first on each environment.
RECOMMENDED_ALGO: dict[str, str] = {"CartPole-v1": "ppo", "Acrobot-v1": "dqn", "MountainCar-v0": "dqn",
                                    "Pendulum-v1": "sac", "LunarLander-v3": "ppo", "Hopper-v5": "sac"}


def check_algo(algo: Any) -> str:
    if not isinstance(algo, str) or algo.lower() not in ALGOS:
        raise ValidationError(f"algo={describe(algo)}: unknown algorithm; expected one of {list(ALGOS)}")
    return algo.lower()


def env_spaces(env_id: str) -> tuple[spaces.Space, spaces.Space]:
    """(observation_space, action_space) of ``env_id``; unknown ids -> ValidationError."""
    env = make_env(env_id)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def check_algo_space(algo: str, env_id: str, action_space: spaces.Space) -> None:
    """dqn needs a Discrete action space, sac a Box; ppo takes either."""
    if algo == "dqn" and not isinstance(action_space, spaces.Discrete):
        raise ValidationError(f"algo='dqn' on env={env_id!r}: dqn needs a Discrete action space, this one is "
                              f"{action_space}; use ppo or sac")
    if algo == "sac" and not isinstance(action_space, spaces.Box):
        raise ValidationError(f"algo='sac' on env={env_id!r}: sac needs a Box (continuous) action space, this "
                              f"one is {action_space}; use ppo or dqn")
    if not isinstance(action_space, (spaces.Discrete, spaces.Box)):
        raise ValidationError(f"env={env_id!r}: action space {action_space} unsupported; expected Discrete or Box")


def hyperparams(env_id: str, algo: str, **overrides: Any) -> dict[str, Any]:
    """The defaults for (env_id, algo) (or the fallback) updated with ``overrides``: a JSON-able dict with
    ``n_timesteps``, ``n_envs`` and the algorithm's keyword arguments."""
    algo = check_algo(algo)
    values = copy.deepcopy(DEFAULT_HYPERPARAMS.get((env_id, algo), FALLBACK_HYPERPARAMS))
    values.update(overrides)
    for key in ("n_timesteps", "n_envs"):
        value = values[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1 or int(value) != value:
            raise ValidationError(f"{key}={value!r}: expected an int >= 1")
        values[key] = int(value)
    return values


def _schedule(value: Any) -> Any:
    """``"lin_0.001"`` -> linear decay from 0.001 to 0 over training (zoo notation); other values unchanged."""
    if isinstance(value, str) and value.startswith("lin_"):
        try:
            start = float(value[4:])
        except ValueError:
            raise ValidationError(f"schedule {value!r}: expected 'lin_<number>'") from None
        return LinearSchedule(start, 0.0, 1.0)
    return value


def make_model(algo: str, env_id: str, seed: int = 0, **overrides: Any) -> BaseAlgorithm:
    """An untrained SB3 model (``"MlpPolicy"``) for ``env_id`` on ``make_vec_env(env_id, n_envs, seed)``
    (Monitor-wrapped sub-envs) with ``hyperparams(env_id, algo, **overrides)``; ``n_timesteps`` is not used
    here (pass it to ``model.learn``). PPO runs on the CPU unless ``device=`` says otherwise."""
    algo = check_algo(algo)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValidationError(f"seed={seed!r}: expected a non-negative int")
    _, action_space = env_spaces(env_id)
    check_algo_space(algo, env_id, action_space)
    kwargs = hyperparams(env_id, algo, **overrides)
    kwargs.pop("n_timesteps")
    n_envs = kwargs.pop("n_envs")
    kwargs = {k: _schedule(v) for k, v in kwargs.items()}
    kwargs.setdefault("device", "cpu" if algo == "ppo" else "auto")
    venv = make_vec_env(env_id, n_envs=n_envs, seed=int(seed))
    try:
        return ALGO_CLASSES[algo]("MlpPolicy", venv, seed=int(seed), verbose=0, **kwargs)
    except TypeError as exc:
        venv.close()
        raise ValidationError(f"hyperparameters for {algo} on {env_id}: {exc}") from None


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread inside the block (restored after): SB3's small MLPs act and train faster so,
    and much faster on a busy machine, where extra threads only contend."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def rollout_timesteps(model: BaseAlgorithm) -> int:
    """Environment steps per rollout, the unit in which ``learn`` advances: n_steps * n_envs on-policy,
    train_freq * n_envs off-policy with a step-based train_freq; 1 when rollouts end with episodes (unknown)."""
    if isinstance(model, OnPolicyAlgorithm):
        return model.n_steps * model.n_envs
    freq = getattr(model, "train_freq", None)
    if freq is not None and freq.unit == TrainFrequencyUnit.STEP:
        return freq.frequency * model.n_envs
    return 1


def learn_timesteps(model: BaseAlgorithm, total_timesteps: int) -> int:
    """The environment steps ``model.learn(total_timesteps)`` really takes unless a callback stops it: SB3
    collects whole rollouts until it reaches the total, so it stops at the first multiple of
    ``rollout_timesteps(model)`` at or past ``total_timesteps`` (e.g. 100_096 for 100_000 in rollouts of 256)."""
    chunk = rollout_timesteps(model)
    return -(-int(total_timesteps) // chunk) * chunk


def timestep_bar(model: BaseAlgorithm, total_timesteps: int, **tqdm_kwargs: Any) -> tqdm:
    """A tqdm bar over the environment steps of ``model.learn(total_timesteps)`` whose total is what learn
    really does (``learn_timesteps``); move it with :func:`advance`."""
    tqdm_kwargs.setdefault("unit", "step")
    return tqdm(total=learn_timesteps(model, total_timesteps), **tqdm_kwargs)


def advance(bar: tqdm, num_timesteps: int) -> None:
    """Show ``num_timesteps`` steps done on ``bar``, never past its total (episode-based rollouts can overshoot)."""
    bar.update(min(int(num_timesteps), bar.total) - bar.n)


def episode_stats(model: BaseAlgorithm, last: int = 20) -> dict[str, float | None]:
    """mean_return / mean_length of the ``last`` finished episodes in ``model.ep_info_buffer`` (the Monitor's
    true returns, whatever reward the model trains on); None before any episode has finished."""
    episodes = list(model.ep_info_buffer)[-last:]
    if not episodes:
        return {"mean_return": None, "mean_length": None}
    return {"mean_return": float(np.mean([e["r"] for e in episodes])),
            "mean_length": float(np.mean([e["l"] for e in episodes]))}


def run_user_callback(callback: Any, record: dict, model: BaseAlgorithm, algo: str, state: dict) -> None:
    """Call a learner's ``callback(record, SB3Policy)`` if given: its True sets ``state["stop"]``, and its time
    is added to ``state["callback_seconds"]`` (which the history's "seconds" leave out)."""
    if callback is None:
        return
    t0 = time.perf_counter()
    state["stop"] = bool(callback(record, SB3Policy(model, algo)))
    state["callback_seconds"] += time.perf_counter() - t0


class SB3Policy:
    """Callable form of an SB3 model: ``policy(obs_batch) -> actions`` from the deterministic ``predict``.

    Discrete action spaces give int64 actions ``(N,)``, Box ones float arrays ``(N, *act_shape)`` in the
    space's dtype. A single observation (shaped like the observation space) gives a single action.
    """

    def __init__(self, model: BaseAlgorithm, algo: str | None = None):
        self.model = model
        self.algo = algo

    @property
    def observation_space(self) -> spaces.Space:
        return self.model.observation_space

    @property
    def action_space(self) -> spaces.Space:
        return self.model.action_space

    def __call__(self, obs: Any) -> np.ndarray:
        batch, single = as_batch(obs, self.observation_space)
        with one_thread():
            actions, _ = self.model.predict(batch, deterministic=True)
        actions = np.asarray(actions)
        if isinstance(self.action_space, spaces.Discrete):
            actions = actions.reshape(len(batch)).astype(np.int64)
        else:
            actions = actions.reshape(len(batch), *self.action_space.shape).astype(self.action_space.dtype)
        return actions[0] if single else actions


# -- policy likelihoods and replay buffers (for the IRL learners) ----------------------------------------
def action_log_prob(model: BaseAlgorithm, obs: Any, acts: Any) -> torch.Tensor:
    """log pi(a | s) of an SB3 PPO or SAC policy, in nats, env action units: obs (n, *obs_shape), acts (n,)
    Discrete or (n, *act_shape) Box -> (n,) float32 tensor on the CPU (differentiable in the policy's
    parameters; wrap in ``torch.no_grad()`` when only the value is needed).

    PPO: its ``evaluate_actions`` (a Box density over the unclipped Gaussian, evaluated at the given actions).
    SAC: the squashed Gaussian at ``scale_action(acts)`` plus the change of variables to env units,
    -sum log((high - low) / 2), so that the density integrates to one over the action box. DQN has no
    stochastic policy and is refused.
    """
    policy = model.policy
    obs_t = policy.obs_to_tensor(np.asarray(obs))[0]
    acts = np.asarray(acts)
    if isinstance(model, PPO):
        if isinstance(model.action_space, spaces.Discrete):
            acts_t = torch.as_tensor(acts.reshape(-1), device=policy.device).long()
        else:
            acts_t = torch.as_tensor(acts.reshape(len(acts), -1), dtype=torch.float32, device=policy.device)
        _, log_prob, _ = policy.evaluate_actions(obs_t, acts_t)
        return log_prob.reshape(-1).float().cpu()
    if isinstance(model, SAC):
        low, high = model.action_space.low, model.action_space.high
        scaled = policy.scale_action(acts.reshape(len(acts), -1).astype(np.float32))
        mean, log_std, kwargs = model.actor.get_action_dist_params(obs_t)
        dist = model.actor.action_dist.proba_distribution(mean, log_std, **kwargs)
        log_prob = dist.log_prob(torch.as_tensor(scaled, dtype=torch.float32, device=policy.device))
        log_det = float(np.sum(np.log((high - low) / 2.0)))
        return (log_prob.reshape(-1) - log_det).float().cpu()
    raise ValidationError(f"model: {type(model).__name__}; expected an SB3 PPO or SAC (a stochastic policy)")


def relabel_replay_buffer(model: BaseAlgorithm, reward_fn: Any, chunk: int = 4096, with_dones: bool = False) -> int:
    """Rewrite an off-policy model's replay-buffer rewards with ``reward_fn(obs, acts, next_obs) -> (n,)``
    (env action units: SAC's stored [-1, 1] actions are unscaled first); ``with_dones`` passes a 4th (n,) bool
    array, True for real terminations (not time-limit cuts). Returns the number of transitions relabelled
    (0 for on-policy models or an empty buffer)."""
    buffer = getattr(model, "replay_buffer", None)
    if buffer is None:
        return 0
    size = buffer.buffer_size if buffer.full else buffer.pos
    if size == 0:
        return 0
    n = size * buffer.n_envs
    obs = buffer.observations[:size].reshape(n, *buffer.obs_shape)
    if buffer.optimize_memory_usage:  # next observation of slot i lives in slot i + 1
        next_obs = buffer.observations[(np.arange(size) + 1) % buffer.buffer_size].reshape(n, *buffer.obs_shape)
    else:
        next_obs = buffer.next_observations[:size].reshape(n, *buffer.obs_shape)
    acts = buffer.actions[:size].reshape(n, *buffer.actions.shape[2:])
    if isinstance(model.action_space, spaces.Discrete):
        acts = acts.reshape(-1).astype(np.int64)
    elif hasattr(model.policy, "unscale_action"):
        acts = model.policy.unscale_action(acts)  # SAC stores actions scaled to [-1, 1]
    terminated = buffer.dones[:size].reshape(n) > 0.5
    if getattr(buffer, "handle_timeout_termination", False):  # SB3 stores time-limit cuts as dones too
        terminated &= buffer.timeouts[:size].reshape(n) < 0.5
    rewards = np.concatenate([np.asarray(reward_fn(obs[i:i + chunk], acts[i:i + chunk], next_obs[i:i + chunk],
                                                   *([terminated[i:i + chunk]] if with_dones else [])),
                                         dtype=np.float64).reshape(-1) for i in range(0, n, chunk)])
    buffer.rewards[:size] = rewards.reshape(size, buffer.n_envs).astype(buffer.rewards.dtype)
    return n


# -- warm start from behaviour cloning ---------------------------------------------------------------
class StandardizeExtractor(BaseFeaturesExtractor):
    """Flatten, then ``(obs - obs_mean) / obs_scale`` with fixed buffers: MLPPolicy's input normalisation.

    (SB3 has already one-hot encoded a Discrete observation, which MLPPolicy does too, with mean 0, scale 1.)
    """

    def __init__(self, observation_space: spaces.Space, obs_mean: list[float], obs_scale: list[float]):
        super().__init__(observation_space, features_dim=len(obs_mean))
        self.register_buffer("obs_mean", torch.as_tensor(obs_mean, dtype=torch.float32))
        self.register_buffer("obs_scale", torch.as_tensor(obs_scale, dtype=torch.float32))

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        x = observations.reshape(observations.shape[0], -1).float()
        return (x - self.obs_mean) / self.obs_scale


def _same_space(a: spaces.Space, b: spaces.Space) -> bool:
    if isinstance(a, spaces.Discrete) and isinstance(b, spaces.Discrete):
        return int(a.n) == int(b.n) and int(a.start) == int(b.start)
    if isinstance(a, spaces.Box) and isinstance(b, spaces.Box):
        return tuple(a.shape) == tuple(b.shape)
    return False


def ppo_from_bc(env_id: str, policy: Any, seed: int = 0, **ppo_kwargs: Any) -> PPO:
    """An SB3 PPO for ``env_id`` whose actor equals ``policy`` (an ``irlhf.nn.policies.Policy`` or
    ``MLPPolicy``, e.g. ``bc.train(...).policy``): same hidden sizes and activation, the observation
    standardisation as a ``StandardizeExtractor``, the weights of ``policy.net`` in
    ``mlp_extractor.policy_net`` + ``action_net`` and (Box actions) its ``log_std``. The value net keeps
    SB3's initialisation. ``ppo_kwargs``: PPO arguments (and ``n_envs``) over the zoo defaults of
    ``hyperparams(env_id, "ppo")``; ``use_sde`` is off and the policy architecture is fixed by ``policy``.
    """
    module = policy.module if isinstance(policy, Policy) else policy
    if not isinstance(module, MLPPolicy):
        raise ValidationError(f"policy: {type(policy).__name__}; expected an irlhf Policy or MLPPolicy")
    obs_space, act_space = env_spaces(env_id)
    if not (_same_space(module.observation_space, obs_space) and _same_space(module.action_space, act_space)):
        raise ValidationError(
            f"policy spaces {module.observation_space} -> {module.action_space} do not match env={env_id!r} "
            f"({obs_space} -> {act_space})")
    if isinstance(act_space, spaces.Discrete) and int(act_space.start) != 0:
        raise ValidationError(f"env={env_id!r}: Discrete action space with start={act_space.start}; SB3 needs 0")
    defaults = hyperparams(env_id, "ppo")
    for key in ("policy_kwargs", "use_sde", "sde_sample_freq"):
        defaults.pop(key, None)
    user_policy_kwargs = dict(ppo_kwargs.pop("policy_kwargs", None) or {})
    defaults.update(ppo_kwargs)
    defaults["use_sde"] = False
    hidden = list(module.hidden_sizes)
    defaults["policy_kwargs"] = {
        **user_policy_kwargs,
        "net_arch": dict(pi=hidden, vf=hidden),
        "activation_fn": ACTIVATIONS[module.activation],
        "features_extractor_class": StandardizeExtractor,
        "features_extractor_kwargs": dict(obs_mean=module.obs_mean.tolist(), obs_scale=module.obs_scale.tolist()),
    }
    defaults.pop("n_timesteps")
    model = make_model("ppo", env_id, seed=seed, **defaults)
    copy_actor(module, model)
    return model


def copy_actor(module: Any, model: PPO) -> None:
    """Copy an MLPPolicy's weights (and log_std) into a PPO policy built with the matching architecture."""
    sb3 = model.policy
    src = [m for m in module.net if isinstance(m, nn.Linear)]
    dst = [m for m in sb3.mlp_extractor.policy_net if isinstance(m, nn.Linear)] + [sb3.action_net]
    if len(src) != len(dst) or any(s.weight.shape != d.weight.shape for s, d in zip(src, dst)):
        raise ValidationError("policy: its layers do not match the PPO actor built for it")
    with torch.no_grad():
        for s, d in zip(src, dst):
            d.weight.copy_(s.weight.to(d.weight.dtype))
            d.bias.copy_(s.bias.to(d.bias.dtype))
        if not module.discrete:
            sb3.log_std.copy_(module.log_std.detach().reshape(sb3.log_std.shape))
        extractor = sb3.pi_features_extractor
        extractor.obs_mean.copy_(module.obs_mean)
        extractor.obs_scale.copy_(module.obs_scale)


__all__ = ["ALGOS", "DEFAULT_HYPERPARAMS", "FALLBACK_HYPERPARAMS", "RECOMMENDED_ALGO", "RlKwargs", "SB3Policy",
           "action_log_prob",
           "check_algo", "episode_stats", "hyperparams", "make_model", "ppo_from_bc", "relabel_replay_buffer"]
