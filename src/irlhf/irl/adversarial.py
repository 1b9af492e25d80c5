"""The adversarial imitation loop GAIL and AIRL share: a discriminator against an SB3 generator.

Each round the generator (SB3 PPO, or SAC for Box actions) takes ``round_steps`` environment steps on the
current discriminator's reward and trains as usual (PPO: one rollout and its epochs; SAC: its own gradient
steps); then the discriminator takes ``disc_updates`` Adam steps, each on ``demo_batch_size`` expert
transitions against as many from the round's policy transitions, minimising the logistic loss

    L_D = -E_expert[log D(x)] - E_policy[log(1 - D(x))],     D(x) = sigmoid(logit(x)),

(expert = label 1), optionally with a gradient penalty and a discriminator entropy bonus (``Config``).
A Box-action SAC generator's replay buffer is relabelled with the new reward after each round (its stored
rewards would otherwise come from every past discriminator). The algorithm modules supply the
discriminator (``Discriminator``: its logit and how it turns into the generator's reward); this module owns
the inputs, the loop, the logs and the result.

Inputs of every network: observations standardised with the demonstrations' mean / std (Box; one-hot for
Discrete), actions one-hot (Discrete) or raw (Box).

Episode ends (``absorbing=True``, Kostrikov et al. 2019, "Discriminator-Actor-Critic"): a reward learned
from a discriminator is biased by when episodes end. If it is mostly negative the policy learns to end
episodes early (CartPole falls at once), if positive to never end them (MountainCar never reaches the
goal). So a real termination leads to an absorbing state s_a (its own input: zero observation, absorbing
flag 1, zero action) that the discriminator also scores: every terminal transition in the expert and
policy data adds one transition s_a -> s_a, and the generator's reward for a terminal step gets the
discounted tail of the absorbing reward,

    r_T = r(s_T, a_T, s_a) + gamma / (1 - gamma) r(s_a, ., s_a).

Ending an episode is then as good or bad as the expert's data says: the CartPole expert never falls, so
s_a looks like the policy and the tail is a large penalty; a MountainCar expert always reaches the goal,
so the tail is a reward. That needs a reward that can be negative (AIRL's f - log pi; GAIL's "logit", the
form DAC uses). GAIL's default -log(1 - D) never is: its tail is at best no penalty (CartPole: D(s_a) -> 0)
and, where the expert's episodes end too, a bonus of up to gamma / (1 - gamma) times the best per-step reward
(999 times on LunarLander), which pays the policy to end episodes soon (docs/RESULTS.md, LunarLander).
"""

from __future__ import annotations

import abc
import dataclasses
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecNormalize
from torch import nn

from irlhf.core.config import (BaseConfig, NonNegative, NonNegativeInt, OneOf, Positive, PositiveInt, Range, Seed,
                               Widths)
from irlhf.core.errors import ValidationError
from irlhf.data.demos import demo_transitions, obs_stats
from irlhf.envs.gym import make_env
from irlhf.envs.spaces import act_dim
from irlhf.nn.encoders import ObsEncoder, encode, to_tensor
from irlhf.nn.mlp import ACTIVATIONS
from irlhf.rl.pretrain import resolve_bc_warm_start, warm_start_policy
from irlhf.rl.rewards import RewardFunction
from irlhf.rl.sb3 import (RlKwargs, SB3Policy, action_log_prob, advance, check_algo_space, episode_stats, make_model,
                          ppo_from_bc, relabel_replay_buffer, run_user_callback, timestep_bar)
from irlhf.rl.wrappers import RewardVecEnvWrapper

__all__ = ["Config", "Discriminator", "Features", "Result", "discriminator_loss", "train"]

GENERATORS = ("ppo", "sac")
# label smoothing eps: 0.5 would make every target 1/2 (nothing to learn)
SmoothingFraction = Annotated[float, Range(0, 0.5, high_open=True)]


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """Settings of the adversarial loop (GAIL's and AIRL's Configs add their own fields).

    algo: the generator, "ppo" (any action space) or "sac" (Box actions).
    total_timesteps: environment steps of the generator, in all.
    rl_kwargs: SB3 arguments over ``irlhf.rl.sb3.hyperparams(env, algo)`` (n_envs included).
    round_steps: environment steps per round (discriminator training every round); None = one PPO rollout
      (n_steps * n_envs), or 1000 for SAC.
    disc_updates: discriminator Adam steps per round. The defaults (32 steps at disc_lr 3e-3) make a strong
      discriminator: the absorbing state's reward must turn negative before the policy learns to end
      episodes. Measured on CartPole (GAIL, 12k steps, seeds 0-2): deterministic returns 278 / 98 / 202 with
      them, 9 / 9 with 4 steps at 3e-4 and 33 / 43 with 8 at 1e-3; AIRL (30k steps, seed 0): 417 against 9.5.
    demo_batch_size: expert transitions per discriminator step; as many policy transitions are drawn from
      the round's (all of them when the round has fewer).
    disc_hidden_sizes / disc_activation: the discriminator's networks. disc_lr: its Adam step size.
    grad_penalty: weight lambda of the gradient penalty lambda E[(||grad_x logit(x_hat)|| - 1)^2] on inputs
      x_hat interpolated between expert and policy inputs (Gulrajani et al. 2017; 0 = off).
    entropy_bonus: weight of the discriminator's mean Bernoulli entropy subtracted from its loss (OpenAI
      baselines' GAIL ``entcoeff``, 1e-3 there; 0 = off). The policy's own entropy bonus is PPO's ``ent_coef``.
    label_smoothing: eps in [0, 0.5): the discriminator's targets are 1 - eps (expert) and eps (policy)
      (``discriminator_loss``), which bounds its logits, and so the per-step reward, by log((1 - eps) / eps).
    normalize_obs: standardise Box observations with the demonstrations' statistics.
    absorbing: score episode ends through an absorbing state (module docstring); False = the plain
      reward on the terminal transition (right for tasks that never end early).
    normalize_reward: scale the PPO generator's rewards by a running estimate of the return's std (SB3's
      ``VecNormalize(norm_reward=True)``); None = on for PPO, off for SAC (whose relabelled buffer holds raw
      rewards, so it cannot be on there).
    bc_warm_start: start the PPO generator's actor from behaviour cloning on the demonstrations
      (``irlhf.rl.pretrain.warm_start_policy``: BC defaults with tanh units, ``ppo_from_bc``).
    log_every: rounds between history records (and callback calls).
    seed: seeds SB3, the networks and the minibatches.  progress: a progress bar over timesteps.
    """

    algo: Literal["ppo", "sac"] = "ppo"
    total_timesteps: PositiveInt = 100_000
    rl_kwargs: RlKwargs = dataclasses.field(default_factory=dict)
    round_steps: PositiveInt | None = None
    disc_updates: NonNegativeInt = 32
    demo_batch_size: PositiveInt = 256
    disc_hidden_sizes: Widths = (64, 64)
    disc_activation: Annotated[str, OneOf(ACTIVATIONS)] = "relu"
    disc_lr: Positive = 3e-3
    grad_penalty: NonNegative = 0.0
    entropy_bonus: NonNegative = 0.0
    label_smoothing: SmoothingFraction = 0.0
    normalize_obs: bool = True
    absorbing: bool = True
    normalize_reward: bool | None = None
    bc_warm_start: bool = False
    log_every: PositiveInt = 1
    seed: Seed = 0
    progress: bool = False

    def validate(self) -> None:
        if self.normalize_reward and self.algo == "sac":
            raise ValidationError("normalize_reward=True with algo='sac': the relabelled replay buffer holds "
                                  "raw rewards; expected False or None for SAC")
        object.__setattr__(self, "bc_warm_start", resolve_bc_warm_start(self.bc_warm_start, self.algo))


# -- inputs ---------------------------------------------------------------------------------------------
class Features(ObsEncoder):
    """Raw (obs, acts) -> network inputs: obs (N, *obs_shape) -> (N, obs_dim) standardised (Box) or one-hot
    (Discrete) by ``irlhf.nn.encoders.ObsEncoder``, with one more column, the absorbing flag (0 here;
    ``absorbing_obs`` sets it), when ``absorbing``; acts (N,) -> (N, n) one-hot (Discrete) or
    (N, *act_shape) -> (N, act_dim) raw (Box)."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space,
                 obs_mean: np.ndarray | None = None, obs_scale: np.ndarray | None = None, absorbing: bool = False):
        super().__init__(observation_space, obs_mean, obs_scale)
        self.action_space = action_space
        self.absorbing = bool(absorbing)
        self.raw_obs_dim = self.obs_dim
        self.obs_dim = self.raw_obs_dim + int(self.absorbing)
        self.act_dim = act_dim(action_space)

    def obs(self, obs: Any) -> torch.Tensor:
        x = self.encode(obs)
        return nn.functional.pad(x, (0, 1)) if self.absorbing else x

    def absorbing_obs(self, n: int) -> torch.Tensor:
        """(n, obs_dim) inputs of the absorbing state: zeros, flag 1."""
        x = torch.zeros(n, self.obs_dim)
        x[:, -1] = 1.0
        return x

    def acts(self, acts: Any) -> torch.Tensor:
        return encode(acts, self.action_space)


class Discriminator(nn.Module, abc.ABC):
    """What GAIL and AIRL define; inputs are ``Features`` outputs (float tensors, so that the gradient
    penalty can interpolate them).

    logit(x, dones, log_pi) -> (N,): log D - log(1 - D). x = (obs_x (N, obs_dim), act_x (N, act_dim),
    next_x (N, obs_dim)); dones (N,) float, 1 where s' is terminal; log_pi (N,) the generator's
    log pi(a | s), given only when ``needs_log_pi``.
    policy_reward(logit, log_pi) -> (N,): the generator's reward.
    reward(x, dones) -> (N,): the recovered reward users get in ``Result.reward``.
    """

    needs_log_pi: bool = False

    @abc.abstractmethod
    def logit(self, x: tuple[torch.Tensor, torch.Tensor, torch.Tensor], dones: torch.Tensor,
              log_pi: torch.Tensor | None) -> torch.Tensor:
        """log D - log(1 - D), (N,)."""

    @abc.abstractmethod
    def policy_reward(self, logit: torch.Tensor, log_pi: torch.Tensor | None) -> torch.Tensor:
        """The generator's reward, (N,)."""

    @abc.abstractmethod
    def reward(self, x: tuple[torch.Tensor, torch.Tensor, torch.Tensor], dones: torch.Tensor) -> torch.Tensor:
        """The recovered reward, (N,)."""


def discriminator_loss(logit_expert: torch.Tensor, logit_policy: torch.Tensor, *, entropy_bonus: float = 0.0,
                       label_smoothing: float = 0.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_D = -mean log D(expert) - mean log(1 - D(policy)) - entropy_bonus * mean H(D), from logits (N,), (M,);
    with label_smoothing eps the targets are 1 - eps (expert) and eps (policy) instead of 1 and 0, so the
    optimal logit is bounded by +-log((1 - eps) / eps) (Salimans et al. 2016, one-sided there; two-sided here).

    Returns the loss and (detached) disc_loss (the logistic part), entropy, acc_expert (D > 1/2 on expert),
    acc_policy (D < 1/2 on policy), expert_score / policy_score (mean D)."""
    eps = label_smoothing  # -log sigmoid(l) = softplus(-l), -log(1 - sigmoid(l)) = softplus(l)
    logistic = ((1 - eps) * nn.functional.softplus(-logit_expert) + eps * nn.functional.softplus(logit_expert)).mean()
    logistic = logistic + ((1 - eps) * nn.functional.softplus(logit_policy)
                           + eps * nn.functional.softplus(-logit_policy)).mean()
    both = torch.cat([logit_expert, logit_policy])
    p = torch.sigmoid(both)
    # Bernoulli entropy from logits: softplus(l) - p * l
    entropy = (nn.functional.softplus(both) - p * both).mean()
    loss = logistic - entropy_bonus * entropy
    parts = {"disc_loss": logistic, "disc_entropy": entropy,
             "acc_expert": (logit_expert > 0).float().mean(), "acc_policy": (logit_policy < 0).float().mean(),
             "expert_score": torch.sigmoid(logit_expert).mean(), "policy_score": torch.sigmoid(logit_policy).mean()}
    return loss, {k: v.detach() for k, v in parts.items()}


def gradient_penalty(disc: Discriminator, x_expert: tuple, x_policy: tuple, dones: torch.Tensor,
                     gen: torch.Generator) -> torch.Tensor:
    """E[(||grad logit(x_hat)|| - 1)^2], x_hat = eps x_expert + (1 - eps) x_policy, eps ~ U(0, 1) per row; the
    generator's log pi term (AIRL) is left out, it does not depend on the discriminator's parameters."""
    eps = torch.rand(len(x_expert[0]), 1, generator=gen)
    x_hat = tuple((eps * e + (1 - eps) * p).requires_grad_(True) for e, p in zip(x_expert, x_policy))
    out = disc.logit(x_hat, dones, None if not disc.needs_log_pi else torch.zeros(len(dones)))
    grads = torch.autograd.grad(out.sum(), x_hat, create_graph=True, allow_unused=True)  # GAIL ignores s'
    norm = torch.cat([g.reshape(len(g), -1) for g in grads if g is not None], dim=1).norm(dim=1)
    return ((norm - 1.0) ** 2).mean()


# -- result ---------------------------------------------------------------------------------------------
class RecoveredReward(RewardFunction):
    """``reward(obs (n, ...), acts (n, ...), next_obs (n, ...)) -> (n,)`` numpy from the discriminator's
    ``reward`` (s' treated as non-terminal); one transition (unbatched) gives a float. Usable by
    ``irlhf.rl.wrappers.RewardWrapper`` / ``RewardVecEnvWrapper``."""

    def __init__(self, disc: Discriminator, features: Features):
        self.disc, self.features = disc, features
        self.observation_space, self.action_space = features.observation_space, features.action_space

    def batch(self, obs: np.ndarray, acts: np.ndarray, next_obs: np.ndarray | None,
              dones: np.ndarray | None) -> torch.Tensor:
        self.disc.eval()
        inputs = (self.features.obs(obs), self.features.acts(acts),
                  self.features.obs(obs if next_obs is None else next_obs))
        return self.disc.reward(inputs, torch.zeros(len(obs)))


@dataclasses.dataclass
class Result:
    """policy: ``irlhf.rl.sb3.SB3Policy`` (deterministic actions); reward: the recovered reward
    (``RecoveredReward``); discriminator and features: the trained networks; model: the SB3 generator;
    history: one dict per ``log_every`` rounds (round, timesteps, disc_loss, disc_entropy, grad_penalty,
    acc_expert, acc_policy, expert_score, policy_score, reward_step / reward_terminal (the generator's reward
    from the round's discriminator on the round's non-terminal / episode-ending transitions, the absorbing tail
    included; None where the round has none), mean_return (true return of the last 20 finished episodes, None
    before any), mean_length (their mean length in steps), seconds); n_demo_transitions; config."""

    policy: Any
    reward: RecoveredReward
    discriminator: Discriminator
    features: Features
    model: Any
    history: list[dict]
    n_demo_transitions: int
    config: Config


# -- the loop -------------------------------------------------------------------------------------------
def absorbing_inputs(features: Features, x: tuple[torch.Tensor, torch.Tensor, torch.Tensor], dones: torch.Tensor,
                     log_pi: torch.Tensor | None) -> tuple[tuple, torch.Tensor, torch.Tensor | None]:
    """Transitions with real terminations (dones (N,) 1.0) rewritten for the absorbing state: their s' becomes
    s_a, and one s_a -> s_a transition (zero action, log pi 0) is appended per termination. Returns the
    (N + n_done) inputs, all-zero dones and the log-likelihoods (None stays None)."""
    done = dones > 0.5
    n_done = int(done.sum())
    obs_x, act_x, next_x = x
    next_x = torch.where(done[:, None], features.absorbing_obs(len(next_x)), next_x)
    if n_done:
        absorbing = features.absorbing_obs(n_done)
        obs_x = torch.cat([obs_x, absorbing])
        act_x = torch.cat([act_x, torch.zeros(n_done, act_x.shape[1])])
        next_x = torch.cat([next_x, absorbing])
        if log_pi is not None:
            log_pi = torch.cat([log_pi, torch.zeros(n_done)])
    return (obs_x, act_x, next_x), torch.zeros(len(obs_x)), log_pi


def train(env_id: str, demos: Any, config: Config,
          make_discriminator: Callable[[Features], Discriminator], *, name: str,
          callback: Callable[[dict, Any], bool | None] | None = None) -> Result:
    """Run the adversarial loop (module docstring) on a gymnasium id.

    demos: a list of ``Trajectory`` or a ``Transitions`` (obs, acts, next_obs, dones: ``dones`` marks real
    terminations). make_discriminator(features) builds the algorithm's discriminator. callback(record,
    policy) is called with each history record and may return True to stop.
    """
    if not isinstance(env_id, str):
        raise ValidationError(f"env={env_id!r}: expected a gymnasium environment id (the generator trains on it)")
    env = make_env(env_id)
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    check_algo_space(config.algo, env_id, act_space)
    demo = demo_transitions(demos, obs_space, act_space)
    n_demo = len(demo["obs"])

    torch.manual_seed(config.seed)
    mean, scale = obs_stats(demo["obs"], obs_space, config.normalize_obs)
    features = Features(obs_space, act_space, mean, scale, absorbing=config.absorbing)
    disc = make_discriminator(features)
    optimizer = torch.optim.Adam(disc.parameters(), lr=config.disc_lr)
    gen = torch.Generator().manual_seed(config.seed)

    if config.bc_warm_start:
        model = ppo_from_bc(env_id, warm_start_policy(env_id, demos, config.seed), seed=config.seed,
                            **config.rl_kwargs)
    else:
        model = make_model(config.algo, env_id, seed=config.seed, **config.rl_kwargs)
    n_envs = model.get_env().num_envs
    round_steps = config.round_steps or (model.n_steps * n_envs if config.algo == "ppo" else 1000)
    normalize_reward = config.algo == "ppo" if config.normalize_reward is None else config.normalize_reward

    def log_pi(obs: np.ndarray, acts: np.ndarray) -> torch.Tensor | None:
        if not disc.needs_log_pi:
            return None
        with torch.no_grad():
            return action_log_prob(model, obs, acts)

    # the absorbing state's discounted tail, sum_{k >= 1} gamma^k r(s_a), added to a terminal step's reward
    tail = model.gamma / (1.0 - model.gamma)

    def policy_reward(obs: np.ndarray, acts: np.ndarray, next_obs: np.ndarray, dones: np.ndarray) -> np.ndarray:
        disc.eval()
        lp = log_pi(obs, acts)
        with torch.no_grad():
            x = (features.obs(obs), features.acts(acts), features.obs(next_obs))
            d = to_tensor(dones, torch.float32).reshape(-1)  # a copy: torch warns on read-only arrays
            if not config.absorbing:
                return disc.policy_reward(disc.logit(x, d, lp), lp).numpy()
            n = len(d)
            x, d0, lp = absorbing_inputs(features, x, d, lp)
            r = disc.policy_reward(disc.logit(x, d0, lp), lp)
            if len(r) > n:  # s_a -> s_a rows: all equal; the first gives r(s_a)
                r = r[:n] + tail * r[n] * d
            return r.numpy()

    venv = RewardVecEnvWrapper(model.get_env(), policy_reward, keep_transitions=max(round_steps, n_envs),
                               with_dones=True)
    model.set_env(VecNormalize(venv, norm_obs=False, norm_reward=True, gamma=model.gamma) if normalize_reward
                  else venv)

    demo_x = (features.obs(demo["obs"]), features.acts(demo["acts"]), features.obs(demo["next_obs"]))
    demo_d = to_tensor(demo["dones"], torch.float32)
    if config.absorbing:
        demo_x, demo_d, _ = absorbing_inputs(features, demo_x, demo_d, None)
    n_demo_rows = len(demo_d)
    history: list[dict] = []
    state = {"round": 0, "stop": False, "t0": time.perf_counter(), "callback_seconds": 0.0}

    def disc_round() -> dict[str, float]:
        batch = venv.recent_transitions(round_steps)
        pol_x = (features.obs(batch["obs"]), features.acts(batch["acts"]), features.obs(batch["next_obs"]))
        pol_d = to_tensor(batch["dones"], torch.float32)
        pol_lp = log_pi(batch["obs"], batch["acts"])
        demo_lp = log_pi(demo["obs"], demo["acts"])
        if config.absorbing:
            pol_x, pol_d, pol_lp = absorbing_inputs(features, pol_x, pol_d, pol_lp)
            if demo_lp is not None:  # s_a rows of the demos: log pi 0
                demo_lp = torch.cat([demo_lp, torch.zeros(n_demo_rows - len(demo_lp))])
        n_pol = len(pol_d)
        sums: dict[str, float] = {}
        disc.train()
        for _ in range(config.disc_updates):
            k = min(config.demo_batch_size, n_demo_rows, n_pol)
            ie = torch.randint(n_demo_rows, (k,), generator=gen)
            ip = torch.randperm(n_pol, generator=gen)[:k]
            xe, xp = tuple(t[ie] for t in demo_x), tuple(t[ip] for t in pol_x)
            le = disc.logit(xe, demo_d[ie], None if demo_lp is None else demo_lp[ie])
            lpol = disc.logit(xp, pol_d[ip], None if pol_lp is None else pol_lp[ip])
            loss, parts = discriminator_loss(le, lpol, entropy_bonus=config.entropy_bonus,
                                             label_smoothing=config.label_smoothing)
            gp = torch.zeros(())
            if config.grad_penalty > 0:
                gp = gradient_penalty(disc, xe, xp, demo_d[ie], gen)
                loss = loss + config.grad_penalty * gp
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            for key, value in {**parts, "grad_penalty": gp.detach()}.items():
                sums[key] = sums.get(key, 0.0) + float(value)
        if config.algo == "sac":
            relabel_replay_buffer(model, policy_reward, with_dones=True)
        return {k: v / max(config.disc_updates, 1) for k, v in sums.items()}, round_rewards(batch)

    def round_rewards(batch: dict[str, np.ndarray]) -> dict[str, float | None]:
        """The updated discriminator's generator reward on the round's transitions: per step, and on the steps
        that end an episode (the absorbing tail included; None without one). Ending early pays when the
        second is above what the policy's steps would add up to."""
        r = policy_reward(batch["obs"], batch["acts"], batch["next_obs"], batch["dones"])
        ended = np.asarray(batch["dones"]).reshape(-1) > 0.5
        return {"reward_step": float(r[~ended].mean()) if (~ended).any() else None,
                "reward_terminal": float(r[ended].mean()) if ended.any() else None}

    bar = timestep_bar(model, config.total_timesteps, desc=name, disable=not config.progress, leave=False)

    class RoundCallback(BaseCallback):
        def _on_step(self) -> bool:
            return not state["stop"]

        def _on_rollout_end(self) -> None:
            advance(bar, self.num_timesteps)
            if self.num_timesteps < (state["round"] + 1) * round_steps:
                return
            state["round"] += 1
            parts, rewards = disc_round()
            if state["round"] % config.log_every:
                return
            record = {"round": state["round"], "timesteps": int(self.num_timesteps), **parts, **rewards,
                      **episode_stats(self.model),
                      "seconds": time.perf_counter() - state["t0"] - state["callback_seconds"]}
            if not all(np.isfinite(v) for v in parts.values()):
                raise ValidationError(f"{name}: discriminator loss {parts.get('disc_loss')}: training diverged; "
                                      "expected a smaller disc_lr")
            history.append(record)
            bar.set_postfix(D_loss=f"{parts.get('disc_loss', float('nan')):.3f}",
                            ret="-" if record["mean_return"] is None else f"{record['mean_return']:.1f}",
                            refresh=False)
            run_user_callback(callback, record, self.model, config.algo, state)

    try:
        model.learn(config.total_timesteps, callback=RoundCallback())
    finally:
        bar.close()
    disc.eval()
    return Result(policy=SB3Policy(model, config.algo), reward=RecoveredReward(disc, features), discriminator=disc,
                  features=features, model=model, history=history, n_demo_transitions=n_demo, config=config)
