"""IQ-Learn (Garg et al. 2021, "IQ-Learn: Inverse soft-Q Learning for Imitation"): offline and online,
Discrete (soft Q) and continuous (soft actor-critic) actions.

Discrete actions: one network Q(s, a) stands for both the reward and the policy ("max over Q"):

    V(s)          = alpha * logsumexp_a(Q(s, a) / alpha)                 (soft value, temperature alpha)
    pi(a | s)     = softmax_a(Q(s, a) / alpha) = exp((Q(s, a) - V(s)) / alpha)
    r(s, a, s')   = Q(s, a) - gamma * V(s')                              (the recovered reward; V(s') = 0 when
                                                                          s' is terminal)

The inverse soft-Q objective is  max_Q  E_expert[phi(r)] - (1 - gamma) E_{s0}[V(s0)]  with, for the
chi^2 divergence, phi(x) = x - x^2 / (4 alpha_chi). Offline the authors replace (1 - gamma) E_{s0}[V(s0)] by
its telescoped form on expert transitions, E_expert[V(s) - gamma V(s')] (their ``method.loss=value_expert``;
the ``v0`` option is not used), so the loss minimised here, over expert transitions (s, a, s', done) only, is

    L(Q) = -E[r] + E[V(s) - gamma (1 - done) V(s')] + E[r^2] / (4 alpha_chi),
    r    = Q(s, a) - gamma (1 - done) V(s').

The first two terms telescope to E[V(s) - Q(s, a)] = alpha E[-log pi(a | s)]: soft behaviour cloning. The
chi^2 term E[(Q(s, a) - gamma V(s'))^2] / (4 alpha_chi) is a TD-consistency penalty that ties the Q levels
to the observed next states, so that r is a reward for which pi is soft-optimal (and not just any logits).
``divergence="none"`` drops it (phi(x) = x): then L is exactly soft BC with logits Q / alpha.

Online (``Config(online=True)``, the authors' ``method.loss=value``): the agent acts in the environment with
its own soft policy, stores its transitions in a replay buffer, and every update uses a batch of
``batch_size`` expert transitions plus ``batch_size`` policy transitions; the value term then runs over
both (rho = expert U policy), which estimates (1 - gamma) E[V(s0)] with states the policy visits:

    L(Q) = -E_expert[r] + E_{expert U policy}[V(s) - gamma (1 - done) V(s')] + chi2,
    chi2 = E_expert[r^2] / (4 alpha_chi)        (default; the authors' ``method.chi``)
         = E_{expert U policy}[r^2] / (4 alpha_chi)   (``regularize_mixed=True``; their ``method.regularize``)

``done`` is "terminated" only (a time-limit truncation keeps V(s')), as in the authors' replay buffers.
V(s') comes from the trained network (gradient flows through it, the authors' default
``train.use_target=False``) or, with ``use_target=True``, from a Polyak-averaged target copy
(theta' <- tau theta + (1 - tau) theta', ``target_tau``).

Continuous (Box) actions use the soft actor-critic form of the same objective (a critic Q(s, a) and a
tanh-Gaussian actor; ``irlhf.irl.iq_learn_continuous``); ``train`` dispatches on the action space.

    result = iq_learn.train("CartPole-v1", demos, iq_learn.Config())                  # offline, Discrete
    result = iq_learn.train("CartPole-v1", demos, iq_learn.Config(online=True))       # online, Discrete
    result = iq_learn.train("Pendulum-v1", demos, iq_learn.Config(hidden_sizes=(64, 64)))  # continuous
    actions = result.policy(obs_batch)                 # argmax_a Q(s, a), or tanh(mu(s)) scaled
    rewards = result.reward(obs, acts, next_obs)       # Q(s, a) - gamma V(s'), for irlhf.rl.wrappers
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections import deque
from collections.abc import Callable
from typing import Annotated, Any, Literal

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from tqdm.auto import tqdm

from irlhf.core.config import BaseConfig, NonNegativeInt, OneOf, Positive, PositiveInt, Range, Seed, Widths
from irlhf.core.errors import ValidationError
from irlhf.data.demos import demo_transitions, obs_stats
from irlhf.envs.gym import evaluate, make_env
from irlhf.envs.spaces import random_action, resolve_spaces
from irlhf.irl.iq_learn_continuous import (ActorPolicy, Critic, SACLearner, SACReward, TanhGaussianActor, actor_loss,
                                           sac_iq_loss)
from irlhf.nn.iq import DIVERGENCES, iq_objective, polyak, soft_value
from irlhf.nn.mlp import ACTIVATIONS
from irlhf.nn.policies import MLPPolicy, Policy
from irlhf.rl.replay import ReplayBuffer
from irlhf.rl.rewards import RewardFunction

# the continuous learner's names (irlhf.irl.iq_learn_continuous) stay importable from here
__all__ = ["ActorPolicy", "Config", "Critic", "DIVERGENCES", "Result", "SACReward", "SoftQReward", "TanhGaussianActor",
           "actor_loss", "iq_loss", "iq_objective", "policy_from_q", "sac_iq_loss", "soft_value", "train"]


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """IQ-Learn settings (offline defaults: the authors' offline CartPole run, ``agent=softq method.chi=True
    method.loss=value_expert agent.init_temp=0.001``, except the temperature, see ``alpha``).

    alpha: soft temperature of V and pi (> 0). Small alpha makes V ~ max_a Q and the BC term a margin loss.
      Continuous actions: the fixed SAC temperature (authors' ``agent.init_temp`` default 1e-2).
    gamma: discount in [0, 1).
    divergence: "chi2" (phi(x) = x - x^2 / (4 chi_alpha), the TD-consistency penalty) or "none" (phi(x) = x;
      the loss is then soft behaviour cloning).
    chi_alpha: alpha_chi of the chi^2 divergence (> 0); the penalty weight is 1 / (4 chi_alpha). Authors: 0.5.
    regularize_mixed: online only: chi^2 penalty on expert and policy transitions (authors'
      ``method.regularize``) instead of expert only (default False, their ``method.chi``).
    hidden_sizes / activation: the Q network (``irlhf.nn.mlp``), output one Q value per action; for Box
      actions the critic (input concat(obs, a), output 1) and the actor (output mu, log sigma).
    lr: Adam step size of the Discrete Q network.  critic_lr / actor_lr: Adam step sizes of the continuous
      critic and actor (authors' SAC: 3e-4 and 3e-4; their MuJoCo runs lower actor_lr to 3e-5).
    batch_size: expert transitions per update (all of them when there are fewer, offline Discrete);
      online, as many policy transitions again from the replay buffer.
    updates: gradient updates (offline). Online the count is (env_steps - learning_starts) * updates_per_step.
    online: act in the environment (env must be an id or a gymnasium.Env), half expert / half policy batches.
    env_steps: online environment steps.  learning_starts: uniformly random steps before the first update
      (authors' ``num_seed_steps``).  buffer_size: replay capacity (transitions).
    updates_per_step: gradient updates per env step after learning_starts.
    use_target: V(s') from a Polyak target network (default False, the authors' ``train.use_target``).
    target_tau: Polyak rate in (0, 1] (0.005 as the authors' SAC ``critic_tau``).
    eval_every: every this many updates, evaluate the greedy policy on ``eval_episodes`` episodes
      (``irlhf.envs.gym.evaluate``; needs an env id or an env with a spec); 0 = never.
    normalize_obs: standardise Box observations with the demonstrations' mean / std (stored in the module).
    log_every: updates between history records (and callback calls).
    seed: seeds the initialisation, the minibatches, the actions and the env resets.  progress: a tqdm bar.
    """

    alpha: Positive = 0.01
    gamma: Annotated[float, Range(0, 1, high_open=True)] = 0.99
    divergence: Literal["chi2", "none"] = "chi2"
    chi_alpha: Positive = 0.5
    regularize_mixed: bool = False
    hidden_sizes: Widths = (64, 64)
    activation: Annotated[str, OneOf(ACTIVATIONS)] = "elu"
    lr: Positive = 1e-3
    critic_lr: Positive = 3e-4
    actor_lr: Positive = 3e-4
    batch_size: PositiveInt = 32
    updates: PositiveInt = 5000
    online: bool = False
    env_steps: PositiveInt = 20_000
    learning_starts: NonNegativeInt = 1000
    buffer_size: PositiveInt = 100_000
    updates_per_step: PositiveInt = 1
    use_target: bool = False
    target_tau: Annotated[float, Range(0, 1, low_open=True)] = 0.005
    eval_every: NonNegativeInt = 0
    eval_episodes: PositiveInt = 5
    normalize_obs: bool = True
    log_every: PositiveInt = 100
    seed: Seed = 0
    progress: bool = False

    def validate(self) -> None:
        if self.online and self.learning_starts >= self.env_steps:
            raise ValidationError(f"learning_starts={self.learning_starts}: expected < env_steps={self.env_steps} "
                                  "(no update would run)")


# -- the objective ------------------------------------------------------------------------------
def iq_loss(q: torch.Tensor, q_next: torch.Tensor, acts: torch.Tensor, dones: torch.Tensor, *, alpha: float,
            gamma: float, divergence: str = "chi2", chi_alpha: float = 0.5, is_expert: torch.Tensor | None = None,
            regularize_mixed: bool = False, as_float: bool = True) -> tuple[torch.Tensor, dict[str, Any]]:
    """The Discrete IQ-Learn loss (module docstring) on a batch.

    q, q_next: Q(s, .) and Q(s', .), (N, A) (q_next from the target network when one is used); acts (N,)
    action indices 0..A-1; dones (N,) (1 = s' terminal); is_expert (N,) bool (None: all expert, offline).
    Returns the scalar loss and the parts of ``iq_objective``; floats, or detached tensors with
    ``as_float=False`` (no device sync per update).
    """
    q_sa = q.gather(1, acts.long()[:, None])[:, 0]
    return iq_objective(q_sa, soft_value(q, alpha), soft_value(q_next, alpha), dones, is_expert, gamma=gamma,
                        divergence=divergence, chi_alpha=chi_alpha, regularize_mixed=regularize_mixed,
                        as_float=as_float)


# -- results ------------------------------------------------------------------------------------
class SoftQReward(RewardFunction):
    """The recovered reward r(s, a, s') = Q(s, a) - gamma V(s'), V = alpha logsumexp(Q / alpha).

    ``reward(obs (n, ...), acts (n,), next_obs (n, ...)) -> (n,)`` numpy (the batched form
    ``irlhf.rl.wrappers.RewardVecEnvWrapper`` calls); a single (obs, act, next_obs) gives a float (the
    ``RewardWrapper`` form). It cannot see episode ends: V(s') is used even when s' is terminal.
    """

    def __init__(self, q_module: MLPPolicy, alpha: float, gamma: float):
        self.q_module, self.alpha, self.gamma = q_module, float(alpha), float(gamma)
        self.observation_space, self.action_space = q_module.observation_space, q_module.action_space

    def batch(self, obs: np.ndarray, acts: np.ndarray, next_obs: np.ndarray | None,
              dones: np.ndarray | None) -> torch.Tensor:
        if next_obs is None:
            raise ValidationError("reward: next_obs is None; expected the next observations (V(s') needs them)")
        self.q_module.eval()
        q = self.q_module(obs)
        v_next = soft_value(self.q_module(next_obs), self.alpha)
        return q.gather(1, self.q_module.action_tensor(acts)[:, None])[:, 0] - self.gamma * v_next


@dataclasses.dataclass
class Result:
    """policy: Discrete: a ``Policy`` acting argmax_a Q (its module's logits are Q / alpha, so
    ``policy.module.distribution`` is softmax(Q / alpha)); Box: an ``ActorPolicy`` (greedy tanh(mu)).
    reward: ``SoftQReward`` / ``SACReward``. q_net: the ``MLPPolicy`` whose forward gives Q(s, .) (N, A), or
    the continuous ``Critic``. actor: the ``TanhGaussianActor`` (None for Discrete). history: one dict per
    ``log_every`` updates (update, loss, softq_loss, value_loss, chi2_loss, reward, v, expert_q, policy_q,
    seconds; Discrete: expert_accuracy; Box: actor_loss; online: env_steps, episode_return = mean return of
    the last 10 finished training episodes (nan before the first); eval_return with eval_every).
    n_transitions: expert transitions trained on."""

    policy: Policy | ActorPolicy
    reward: SoftQReward | SACReward
    q_net: MLPPolicy | Critic
    history: list[dict]
    n_transitions: int
    config: Config
    actor: TanhGaussianActor | None = None


def policy_from_q(q_module: MLPPolicy, alpha: float, seed: int = 0) -> Policy:
    """The softmax(Q / alpha) policy as a plain ``MLPPolicy`` (1 / alpha folded into the output layer)."""
    module = copy.deepcopy(q_module)
    last = module.net[-1]
    with torch.no_grad():
        last.weight.div_(alpha)
        last.bias.div_(alpha)
    module.eval()
    return Policy(module, seed=seed)


# -- inputs -------------------------------------------------------------------------------------
def _resolve_env(env: Any, online: bool) -> tuple[spaces.Space, spaces.Space, gymnasium.Env | None, str | None]:
    """(observation_space, action_space, env to act in (online), env id for evaluation or None)."""
    if online and not isinstance(env, (str, gymnasium.Env)):
        raise ValidationError(f"env={type(env).__name__}: online IQ-Learn acts in the environment; expected a "
                              "gymnasium id or a gymnasium.Env, not a pair of spaces")
    obs_space, act_space = resolve_spaces(env)
    env_id = env if isinstance(env, str) else getattr(getattr(env, "spec", None), "id", None)
    if not online:
        return obs_space, act_space, None, env_id
    if isinstance(env, str):
        return obs_space, act_space, make_env(env), env_id
    return obs_space, act_space, env, env_id


# -- learners -----------------------------------------------------------------------------------
class SoftQLearner:
    """Discrete actions: Q network, optional target copy, Adam; one IQ-Learn update per call."""

    def __init__(self, obs_space: spaces.Space, act_space: spaces.Discrete, mean: Any, scale: Any, config: Config):
        self.config, self.act_space = config, act_space
        self.q = MLPPolicy(obs_space, act_space, config.hidden_sizes, config.activation,
                           obs_mean=mean, obs_scale=scale, seed=config.seed)
        self.target = copy.deepcopy(self.q).requires_grad_(False) if config.use_target else None
        self.optimizer = torch.optim.Adam(self.q.parameters(), lr=config.lr)

    def inputs(self, obs: np.ndarray) -> torch.Tensor:
        return self.q.encode(obs)

    def actions(self, acts: np.ndarray) -> torch.Tensor:
        return self.q.action_tensor(acts)

    def explore(self, obs: np.ndarray, gen: torch.Generator) -> Any:
        """A sample of softmax(Q(s, .) / alpha) for one raw observation (an env action)."""
        with torch.no_grad():
            q = self.q.net(self.inputs(np.asarray(obs)[None]))
        idx = int(torch.multinomial(torch.softmax(q / self.config.alpha, dim=-1), 1, generator=gen)[0, 0])
        return idx + int(self.act_space.start)

    def update(self, x: torch.Tensor, a: torch.Tensor, xn: torch.Tensor, d: torch.Tensor,
               is_expert: torch.Tensor | None, gen: torch.Generator) -> dict[str, torch.Tensor]:
        c = self.config
        self.q.train()
        q_both = self.q.net(torch.cat([x, xn]))  # one forward for s and s'
        q_next = q_both[len(x):]
        if self.target is not None:
            with torch.no_grad():
                q_next = self.target.net(xn)
        loss, parts = iq_loss(q_both[:len(x)], q_next, a, d, alpha=c.alpha, gamma=c.gamma, divergence=c.divergence,
                              chi_alpha=c.chi_alpha, is_expert=is_expert, regularize_mixed=c.regularize_mixed,
                              as_float=False)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        polyak(self.q, self.target, c.target_tau)
        return {"loss": loss.detach(), **parts}

    def diagnostics(self, x_all: torch.Tensor, a_all: torch.Tensor) -> dict[str, float]:
        with torch.no_grad():
            return {"expert_accuracy": float((self.q.net(x_all).argmax(dim=-1) == a_all).double().mean())}

    def policy(self) -> Policy:
        self.q.eval()
        return policy_from_q(self.q, self.config.alpha, self.config.seed)

    def result_parts(self) -> dict[str, Any]:
        self.q.eval()
        return {"policy": self.policy(), "reward": SoftQReward(self.q, self.config.alpha, self.config.gamma),
                "q_net": self.q}


# -- training -----------------------------------------------------------------------------------
def train(source: Any, data: Any, config: Config | None = None, *,
          callback: Callable[[dict, Any], bool | None] | None = None) -> Result:
    """Fit IQ-Learn on the demonstrations: offline (no environment steps) or, with ``config.online``,
    acting in the environment with half expert / half policy batches.

    source: a gymnasium id, a ``gymnasium.Env`` or (offline only) a pair (observation_space, action_space);
    Discrete actions use the soft-Q form, Box actions the actor-critic form (``iq_learn_continuous``). A given
    Env is used as is (not closed); an id is made with ``irlhf.envs.gym.make_env`` and closed at the end.
    data: the demonstrations, a list of ``Trajectory`` or a ``Transitions`` (obs, acts, next_obs, dones).
    callback(record, policy), called with each history record and the current greedy policy, may return
    True to stop early.
    """
    config = Config() if config is None else config
    if not isinstance(config, Config):
        raise ValidationError(f"config: {type(config).__name__}; expected irlhf.irl.iq_learn.Config")
    obs_space, act_space, live_env, env_id = _resolve_env(source, config.online)
    if config.eval_every and env_id is None:
        raise ValidationError("eval_every>0: evaluation needs an environment id (or an env with a spec); "
                              "expected env to be an id or a registered gymnasium.Env")
    demo = demo_transitions(data, obs_space, act_space)
    obs_np, acts_np, next_np, dones_np = demo["obs"], demo["acts"], demo["next_obs"], demo["dones"]
    n = len(obs_np)
    mean, scale = obs_stats(obs_np, obs_space, config.normalize_obs)
    discrete = isinstance(act_space, spaces.Discrete)
    learner = (SoftQLearner if discrete else SACLearner)(obs_space, act_space, mean, scale, config)
    with torch.no_grad():
        x_all, xn_all = learner.inputs(obs_np), learner.inputs(next_np)
    a_all = learner.actions(acts_np)
    d_all = torch.as_tensor(dones_np, dtype=torch.float32)

    gen = torch.Generator().manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)  # the random actions before learning_starts
    online = config.online
    total_updates = (config.env_steps - config.learning_starts) * config.updates_per_step if online else config.updates
    history: list[dict] = []
    bar = tqdm(total=total_updates, desc="iq_learn", disable=not config.progress, leave=False)
    t0 = time.perf_counter()
    callback_seconds = 0.0
    full = config.batch_size >= n and not online

    replay = returns = None
    if online:
        replay = ReplayBuffer(min(config.buffer_size, config.env_steps), tuple(obs_space.shape), tuple(act_space.shape),
                         np.int64 if discrete else np.float32)
        returns = deque(maxlen=10)  # the last 10 finished training episodes
        obs, _ = live_env.reset(seed=config.seed)
        episode_return, env_steps = 0.0, 0
    is_expert = torch.cat([torch.ones(config.batch_size, dtype=torch.bool),
                           torch.zeros(config.batch_size, dtype=torch.bool)]) if online else None
    update, stop = 0, False
    try:
        for step in range(1, (config.env_steps if online else config.updates) + 1):
            if online:
                # one env step: uniformly random before learning_starts (authors' seed steps), then pi's sample
                action = random_action(act_space, rng) if step <= config.learning_starts \
                    else learner.explore(obs, gen)
                next_obs, rew, terminated, truncated, _ = live_env.step(action)
                replay.add(obs, action, next_obs, terminated)  # truncation is not terminal: V(s') stays
                episode_return, env_steps, obs = episode_return + float(rew), step, next_obs
                if terminated or truncated:
                    returns.append(episode_return)
                    episode_return = 0.0
                    obs, _ = live_env.reset()  # seeded once at the start; the env's RNG carries on
                if step <= config.learning_starts:
                    continue
            for _ in range(config.updates_per_step if online else 1):
                update += 1
                if online:
                    ie = torch.randint(n, (config.batch_size,), generator=gen)
                    ip = torch.randint(replay.size, (config.batch_size,), generator=gen).numpy()
                    with torch.no_grad():
                        xb = torch.cat([x_all[ie], learner.inputs(replay.obs[ip])])
                        xnb = torch.cat([xn_all[ie], learner.inputs(replay.next_obs[ip])])
                    ab = torch.cat([a_all[ie], learner.actions(replay.acts[ip])])
                    db = torch.cat([d_all[ie], torch.as_tensor(replay.dones[ip])])
                elif full:
                    xb, xnb, ab, db = x_all, xn_all, a_all, d_all
                else:
                    idx = torch.randperm(n, generator=gen)[:config.batch_size]
                    xb, xnb, ab, db = x_all[idx], xn_all[idx], a_all[idx], d_all[idx]
                parts = learner.update(xb, ab, xnb, db, is_expert, gen)
                bar.update(1)
                evaluate_now = config.eval_every and update % config.eval_every == 0
                if update % config.log_every == 0 or update == total_updates or evaluate_now:
                    loss_value = float(parts["loss"])
                    if not np.isfinite(loss_value):
                        raise ValidationError(f"loss={loss_value}: training diverged; expected a smaller lr or "
                                              "larger alpha")
                    record: dict[str, Any] = {"update": update}
                    if online:
                        record["env_steps"] = env_steps
                        record["episode_return"] = float(np.mean(returns)) if returns else float("nan")
                    record.update({k: float(t) for k, t in parts.items()})
                    record.update(learner.diagnostics(x_all, a_all))
                    if evaluate_now:
                        record["eval_return"] = evaluate(env_id, learner.policy(), config.eval_episodes,
                                                         config.seed + 10_000)[0]
                    record["seconds"] = time.perf_counter() - t0 - callback_seconds
                    history.append(record)
                    bar.set_postfix(loss=f"{loss_value:.4g}", refresh=False)
                    if callback is not None:
                        t_cb = time.perf_counter()
                        stop = bool(callback(record, learner.policy()))
                        callback_seconds += time.perf_counter() - t_cb  # "seconds" is training time only
                        if stop:
                            break
            if stop:
                break
    finally:
        bar.close()
        if online and isinstance(source, str):
            live_env.close()
    return Result(**learner.result_parts(), history=history, n_transitions=n, config=config)
