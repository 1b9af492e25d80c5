"""SQIL (Reddy, Dragan & Levine 2019, "SQIL: Imitation Learning via Reinforcement Learning with Sparse
Rewards", ICLR 2020): imitation by off-policy RL on a constant reward, 1 on the expert's transitions and 0
on the agent's own. The environment's reward is never used.

The critic minimises the squared soft Bellman error on the demonstrations with reward 1 and on the agent's
own transitions with reward 0 (the paper's Algorithm 1, lambda_samp >= 0 a weight):

    delta^2(D, r) = E_{(s, a, s', done) ~ D} [ (Q(s, a) - (r + gamma (1 - done) V(s')))^2 ]
    L_SQIL(Q)     = delta^2(D_demo, 1) + lambda_samp delta^2(D_agent, 0)

with the soft value V(s') = log sum_a' exp Q(s', a') (Discrete) or E_{a' ~ pi}[Q(s', a') - alpha log pi(a' | s')]
(SAC), computed with target networks. Every replay batch holds a share ``demo_fraction`` = f of
demonstration rows (f = 1/2 in the paper, balanced batches) and 1 - f of agent rows, so its mean loss is
f delta^2(D_demo, 1) + (1 - f) delta^2(D_agent, 0): lambda_samp = (1 - f) / f. ``done`` is a real
termination only: the demonstrations' ``terminated`` flag, and SB3's timeout handling for the agent (a
time-limit cut keeps V(s')). The policy is greedy (soft-greedy) in Q, so it seeks the demonstrated states,
where reward flows, and returns to them when it drifts away. The rewards are never negative: ending an
episode forfeits all later reward, which suits tasks that end on failure (CartPole) but not tasks that end
at the goal (Acrobot, MountainCar), where the demonstrations' last step would be worth 1 and never reaching it
worth up to 1 / (1 - gamma). So (``absorbing=True``, the absorbing state of Kostrikov et al. 2019) a
demonstration's termination leads to an absorbing state that keeps paying the demonstrator's reward 1: its
target is 1 + gamma / (1 - gamma) = 1 / (1 - gamma) (given as that row's reward, done kept); the agent's own
terminations stay worth 0 after them. Ending as the demonstrator did is then worth what it is to it.

The RL step is Stable-Baselines3, with rl-baselines3-zoo's settings per env (``irlhf.rl.sb3.hyperparams``):
Discrete actions use DQN, as ``imitation``'s SQIL does (the paper's soft Q-learning with its log-sum-exp
replaced by DQN's max, the square by DQN's Huber loss, and epsilon-greedy exploration); Box actions use SAC,
the paper's continuous-control choice. The mixing lives in ``SqilReplayBuffer``, SB3's ``ReplayBuffer``
whose ``sample`` returns the demonstrations and the agent's transitions together.

    result = sqil.train("CartPole-v1", demos, sqil.Config(total_timesteps=50_000))
    result.policy(obs_batch)          # greedy actions of the trained DQN / SAC
    result.history[-1]                # timesteps, loss, demo_q, agent_q, mean_return, ...
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import DQN
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from irlhf.core.config import BaseConfig, NonNegativeInt, Positive, PositiveInt, Range, Seed
from irlhf.core.errors import ValidationError
from irlhf.data.demos import demo_arrays, demo_transitions
from irlhf.envs.gym import evaluate
from irlhf.rl.sb3 import (RlKwargs, SB3Policy, advance, env_spaces, episode_stats, hyperparams, make_model, one_thread,
                          timestep_bar)

__all__ = ["Config", "Result", "SqilReplayBuffer", "train", "DQN_DEFAULTS", "SAC_DEFAULTS"]

#: Config fields that override one SB3 argument each; rl_kwargs may not name them (nor the replay buffer's).
OVERRIDES = ("learning_rate", "batch_size", "buffer_size", "learning_starts", "gamma")
#: SQIL's changes to rl-zoo's DQN settings (under rl_kwargs and the Config fields): with the zoo's CartPole
#: target update every 10 steps at lr 2.3e-3, Q on the agent's reward-0 rows climbs past the bound
#: 1 / (1 - gamma) of a reward <= 1 and the policy collapses after reaching the expert (docs/RESULTS.md)
DQN_DEFAULTS = {"target_update_interval": 1000, "learning_rate": 1e-4}
#: The same for SAC: with the zoo's Pendulum settings (tau 0.005, lr 1e-3) the policy reaches the expert within
#: 3,000 steps, then the critic rates the agent's reward-0 steps as high as the demonstrations and it collapses;
#: a slower target and rate keep them apart (either alone does not: docs/RESULTS.md)
SAC_DEFAULTS = {"tau": 0.001, "learning_rate": 3e-4}
RESERVED = ("replay_buffer_class", "replay_buffer_kwargs", "optimize_memory_usage", "n_timesteps")


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """SQIL settings.

    algo: the off-policy learner: "dqn" (Discrete actions), "sac" (Box actions) or "auto" (default: dqn for
      a Discrete action space, sac for a Box).
    total_timesteps: environment steps of the agent; None (default) = the rl-zoo budget for (env, algo)
      (``hyperparams(env, algo)["n_timesteps"]``: 50_000 for DQN on CartPole-v1, 20_000 for SAC on Pendulum-v1).
    demo_fraction: share of every replay batch drawn from the demonstrations (reward 1), in (0, 1); the rest
      comes from the agent's own transitions (reward 0). Default 0.5, the paper's balanced batches.
    learning_rate / batch_size / buffer_size / learning_starts / gamma: SB3 arguments; None (default) = the
      rl-zoo setting for (env, algo), or SB3's default where the zoo has none; DQN's learning_rate and
      target_update_interval default to ``DQN_DEFAULTS`` (1e-4, 1000 steps) instead, SAC's learning_rate and
      tau to ``SAC_DEFAULTS`` (3e-4, 0.001). buffer_size counts only the
      agent's transitions (the demonstrations are kept apart, all of them).
    rl_kwargs: further SB3 arguments over ``hyperparams(env, algo)`` (n_envs, policy_kwargs, exploration_*,
      train_freq, ...); default {}. The fields above and the replay buffer's arguments are not accepted here.
    log_every: environment steps between history records (and callback calls), rounded up to SB3's
      rollouts (256 steps for DQN on CartPole); default 1000.
    eval_every: environment steps between evaluations of the greedy policy on ``eval_episodes`` episodes
      (``irlhf.envs.gym.evaluate``, resets seeded with seed + 10_000), at the next history record; default 0
      = never. eval_episodes: default 5.
    absorbing: a demonstration's terminal step is worth 1 / (1 - gamma), the absorbing state's reward 1 for
      ever (module docstring); default True. False = worth 1, the paper's plain terminal target.
    seed: seeds SB3 (networks, exploration, env resets, agent minibatches) and the demonstration minibatches;
      default 0. Same seed, same history (on the CPU).
    progress: a progress bar over timesteps; default False.
    """

    algo: Literal["auto", "dqn", "sac"] = "auto"
    total_timesteps: PositiveInt | None = None
    demo_fraction: Annotated[float, Range(0, 1, low_open=True, high_open=True)] = 0.5
    learning_rate: Positive | None = None
    batch_size: PositiveInt | None = None
    buffer_size: PositiveInt | None = None
    learning_starts: NonNegativeInt | None = None
    gamma: Annotated[float, Range(0, 1, high_open=True)] | None = None
    rl_kwargs: RlKwargs = dataclasses.field(default_factory=dict)
    log_every: PositiveInt = 1000
    eval_every: NonNegativeInt = 0
    eval_episodes: PositiveInt = 5
    absorbing: bool = True
    seed: Seed = 0
    progress: bool = False

    def validate(self) -> None:
        clash = sorted(set(self.rl_kwargs) & set(OVERRIDES + RESERVED))
        if clash:
            raise ValidationError(f"rl_kwargs={clash}: set by SQIL or by its own Config fields; expected none of "
                                  f"{list(OVERRIDES + RESERVED)} (use the Config fields)")


# -- the mixed replay buffer ------------------------------------------------------------------------------
class SqilReplayBuffer(ReplayBuffer):
    """SB3's ``ReplayBuffer`` for SQIL: the agent's transitions are stored with reward 0 (whatever the env
    paid), and ``sample(batch_size)`` returns ``n_demo(batch_size) = round(demo_fraction * batch_size)``
    demonstration rows with reward 1 (the first rows; drawn with replacement from a Generator seeded by
    ``seed``) followed by the agent's rows (SB3's own sampling, time-limit cuts not terminal).

    ``set_demos(obs, acts, next_obs, dones, terminal_reward=1.0)`` gives the demonstrations in the buffer's
    format (actions as SB3 stores them: SAC's scaled to [-1, 1]; dones 1 = real termination), their terminal
    rows paid ``terminal_reward`` instead of 1; ``train`` calls it. SB3 builds the
    buffer from ``replay_buffer_class`` / ``replay_buffer_kwargs=dict(demo_fraction=..., seed=...)``.
    """

    def __init__(self, buffer_size: int, observation_space: spaces.Space, action_space: spaces.Space,
                 device: torch.device | str = "auto", n_envs: int = 1, optimize_memory_usage: bool = False,
                 handle_timeout_termination: bool = True, *, demo_fraction: float = 0.5, seed: int = 0):
        super().__init__(buffer_size, observation_space, action_space, device=device, n_envs=n_envs,
                         optimize_memory_usage=optimize_memory_usage,
                         handle_timeout_termination=handle_timeout_termination)
        self.demo_fraction = float(demo_fraction)
        self.demo_rng = np.random.default_rng(seed)
        self.demos: dict[str, np.ndarray] | None = None

    def set_demos(self, obs: np.ndarray, acts: np.ndarray, next_obs: np.ndarray, dones: np.ndarray,
                  terminal_reward: float = 1.0) -> None:
        n = len(obs)
        dones = np.asarray(dones, dtype=np.float32).reshape(n, 1)
        self.demos = {
            "obs": np.asarray(obs).reshape(n, *self.obs_shape).astype(self.observations.dtype),
            "acts": np.asarray(acts).reshape(n, self.action_dim).astype(self.actions.dtype),
            "next_obs": np.asarray(next_obs).reshape(n, *self.obs_shape).astype(self.observations.dtype),
            "dones": dones,
            "rewards": np.where(dones > 0, np.float32(terminal_reward), np.float32(1.0)),
        }

    def n_demo(self, batch_size: int) -> int:
        return int(round(self.demo_fraction * batch_size))

    def add(self, obs: np.ndarray, next_obs: np.ndarray, action: np.ndarray, reward: np.ndarray,
            done: np.ndarray, infos: list[dict[str, Any]]) -> None:
        super().add(obs, next_obs, action, np.zeros(self.n_envs, dtype=np.float32), done, infos)

    def demo_samples(self, k: int, env: Any = None) -> ReplayBufferSamples:
        """``k`` demonstration rows (with replacement) with reward 1 (terminal rows: ``terminal_reward``)."""
        if self.demos is None:
            raise ValidationError("SqilReplayBuffer: no demonstrations; expected set_demos(...) before sampling")
        idx = self.demo_rng.integers(len(self.demos["obs"]), size=k)
        d = self.demos
        data = (self._normalize_obs(d["obs"][idx], env), d["acts"][idx], self._normalize_obs(d["next_obs"][idx], env),
                d["dones"][idx], d["rewards"][idx])
        return ReplayBufferSamples(*map(self.to_torch, data))

    def sample(self, batch_size: int, env: Any = None) -> ReplayBufferSamples:
        k = self.n_demo(batch_size)
        demo = self.demo_samples(k, env)
        if k == batch_size:
            return demo
        agent = super().sample(batch_size - k, env=env)
        return ReplayBufferSamples(*(torch.cat([getattr(demo, f), getattr(agent, f)])
                                     for f in ("observations", "actions", "next_observations", "dones", "rewards")))

    def recent(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(obs, acts) of the agent's last ``k`` steps (of every sub-env), in the buffer's format."""
        size = self.buffer_size if self.full else self.pos
        rows = (self.pos - 1 - np.arange(min(k, size))) % self.buffer_size
        return (self.observations[rows].reshape(-1, *self.obs_shape),
                self.actions[rows].reshape(-1, self.action_dim))


# -- result -----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Result:
    """policy: ``irlhf.rl.sb3.SB3Policy`` (deterministic actions: DQN's argmax, SAC's mean); model: the SB3
    DQN / SAC (its ``replay_buffer`` is the ``SqilReplayBuffer``); algo: "dqn" or "sac"; history: one dict
    per ``log_every`` steps (timesteps; loss: DQN's TD loss or SAC's critic loss, of the last training
    step, None before the first; demo_q / agent_q: mean Q(s, a) over all demonstration transitions / the
    agent's last 2048 steps (SAC: the smaller of its two critics); mean_return / mean_length: true return
    and length of the last 20 finished episodes, None before any; eval_return: mean return of the greedy
    policy when evaluated (``eval_every``), else None; seconds: training time, evaluations and callbacks
    excluded); n_demo_transitions; config."""

    policy: SB3Policy
    model: Any
    algo: str
    history: list[dict]
    n_demo_transitions: int
    config: Config


class LastValues(KVWriter):
    """An SB3 logger output that keeps the last value written under each key (SB3 clears its logger's
    values when it writes them out, at episode ends)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        self.values.update(key_values)


def q_mean(model: Any, buffer: SqilReplayBuffer, obs: np.ndarray, acts: np.ndarray) -> float | None:
    """Mean Q(s, a) of buffer-format (obs, acts): DQN's online network, SAC's smaller critic."""
    if len(obs) == 0:
        return None
    with torch.no_grad():
        obs_t, acts_t = buffer.to_torch(obs), buffer.to_torch(acts)
        if isinstance(model, DQN):
            q = model.q_net(obs_t).gather(1, acts_t.long()).reshape(-1)
        else:
            q = torch.min(torch.cat(model.critic(obs_t, acts_t.float()), dim=1), dim=1).values
    return float(q.mean())


# -- training ---------------------------------------------------------------------------------------------
def describe_space(space: spaces.Space) -> str:
    """A one-line name of a space (a Box's repr prints its bounds, which can wrap)."""
    if isinstance(space, spaces.Box):
        return f"Box of shape {tuple(space.shape)}"
    return str(space)


def resolve_algo(algo: str, env_id: str, act_space: spaces.Space) -> str:
    """"auto" -> dqn (Discrete) / sac (Box); an explicit choice must fit the action space."""
    if not isinstance(act_space, (spaces.Discrete, spaces.Box)):
        raise ValidationError(f"env={env_id!r}: action space {describe_space(act_space)}; SQIL expects Discrete "
                              "(dqn) or Box (sac)")
    fits = "dqn" if isinstance(act_space, spaces.Discrete) else "sac"
    if algo not in ("auto", fits):
        raise ValidationError(f"algo={algo!r} on env={env_id!r}: its action space is {describe_space(act_space)}; "
                              f"expected algo={fits!r} or 'auto'")
    return fits


def train(source: str, data: Any, config: Config | None = None, *,
          callback: Callable[[dict, Any], bool | None] | None = None) -> Result:
    """Train SQIL on ``source`` (a gymnasium id) from the demonstrations ``data`` (a list of ``Trajectory``
    or a ``Transitions``; their ``dones`` mark real terminations).

    callback(record, policy) is called with each history record; returning True stops training.
    """
    config = Config() if config is None else config
    if not isinstance(config, Config):
        raise ValidationError(f"config: {type(config).__name__}; expected irlhf.imitation.sqil.Config")
    if not isinstance(source, str):
        raise ValidationError(f"env={source!r}: expected a gymnasium environment id (SQIL acts in it)")
    obs_space, act_space = env_spaces(source)
    algo = resolve_algo(config.algo, source, act_space)
    (demo_obs,) = demo_arrays(data, ("obs",), "transition")
    if demo_obs.shape[1:] != tuple(obs_space.shape):
        raise ValidationError(f"demos: observations of shape {tuple(demo_obs.shape[1:])}; expected "
                              f"{tuple(obs_space.shape)}, the observation shape of env={source!r}")
    demo = demo_transitions(data, obs_space, act_space)
    n_demo = len(demo["obs"])

    overrides = {key: getattr(config, key) for key in OVERRIDES if getattr(config, key) is not None}
    defaults = DQN_DEFAULTS if algo == "dqn" else SAC_DEFAULTS  # SQIL's over the zoo's, under the user's choices
    overrides = {**{k: v for k, v in defaults.items() if k not in config.rl_kwargs}, **overrides}
    total = config.total_timesteps or hyperparams(source, algo, **config.rl_kwargs, **overrides)["n_timesteps"]
    model = make_model(algo, source, seed=config.seed, **config.rl_kwargs, **overrides,
                       replay_buffer_class=SqilReplayBuffer,
                       replay_buffer_kwargs={"demo_fraction": config.demo_fraction, "seed": config.seed})
    buffer: SqilReplayBuffer = model.replay_buffer
    if not 0 < buffer.n_demo(model.batch_size) < model.batch_size:
        model.get_env().close()
        raise ValidationError(f"demo_fraction={config.demo_fraction!r} with batch_size={model.batch_size}: "
                              f"{buffer.n_demo(model.batch_size)} demonstration rows per batch; expected at least "
                              "one demonstration row and one agent row")
    acts = demo["acts"]
    if algo == "sac":  # SAC stores actions scaled to [-1, 1]
        acts = np.clip(model.policy.scale_action(acts), -1.0, 1.0)
    buffer.set_demos(demo["obs"], acts, demo["next_obs"], demo["dones"],
                     1.0 / (1.0 - model.gamma) if config.absorbing else 1.0)
    last = LastValues()
    model.set_logger(Logger(None, [last]))
    loss_key = "train/loss" if algo == "dqn" else "train/critic_loss"

    history: list[dict] = []
    state = {"next_log": config.log_every, "next_eval": config.eval_every or None, "stop": False,
             "t0": time.perf_counter(), "other_seconds": 0.0}
    bar = timestep_bar(model, total, desc="sqil", disable=not config.progress, leave=False)

    def record_now(t: int) -> dict:
        logged = model.logger.name_to_value
        loss = logged[loss_key] if loss_key in logged else last.values.get(loss_key)
        record = {"timesteps": t, "loss": None if loss is None else float(loss),
                  "demo_q": q_mean(model, buffer, buffer.demos["obs"], buffer.demos["acts"]),
                  "agent_q": q_mean(model, buffer, *buffer.recent(2048)),
                  **episode_stats(model),
                  "eval_return": None}
        if record["loss"] is not None and not np.isfinite(record["loss"]):
            raise ValidationError(f"sqil: loss {record['loss']} at step {t}: training diverged; expected a smaller "
                                  "learning_rate")
        t_other = time.perf_counter()
        if state["next_eval"] is not None and t >= state["next_eval"]:
            record["eval_return"] = evaluate(source, SB3Policy(model, algo), config.eval_episodes,
                                             config.seed + 10_000)[0]
            state["next_eval"] = (t // config.eval_every + 1) * config.eval_every
        record["seconds"] = t_other - state["t0"] - state["other_seconds"]
        history.append(record)
        bar.set_postfix(demo_q=f"{record['demo_q']:.2f}",
                        ret="-" if record["mean_return"] is None else f"{record['mean_return']:.1f}", refresh=False)
        if callback is not None:
            state["stop"] = bool(callback(record, SB3Policy(model, algo)))
        state["other_seconds"] += time.perf_counter() - t_other
        return record

    class LogCallback(BaseCallback):
        def _on_step(self) -> bool:
            return not state["stop"]

        def _on_rollout_end(self) -> None:
            advance(bar, self.num_timesteps)
            if self.num_timesteps >= total:  # the last rollout: recorded after its training step
                return
            if self.num_timesteps >= state["next_log"]:
                state["next_log"] = (self.num_timesteps // config.log_every + 1) * config.log_every
                record_now(int(self.num_timesteps))

    try:
        with one_thread():  # small MLPs: one torch thread is faster, and far faster on a busy machine
            model.learn(total, callback=LogCallback())
            if not state["stop"]:
                record_now(int(model.num_timesteps))  # the final state, after the last training step
    finally:
        bar.close()
    return Result(policy=SB3Policy(model, algo), model=model, algo=algo, history=history, n_demo_transitions=n_demo,
                  config=config)
