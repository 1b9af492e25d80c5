"""IQ-Learn (Garg et al. 2021, "IQ-Learn: Inverse soft-Q Learning for Imitation"): offline, Discrete actions.

One network Q(s, a) stands for both the reward and the policy ("max over Q"):

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

The gradient flows through V(s') as in the authors' code without a target network. Minibatch Adam on the
demonstrations; no environment interaction (online and continuous-action IQ-Learn are not implemented).

    result = iq_learn.train("CartPole-v1", demos, iq_learn.Config())
    actions = result.policy(obs_batch)                 # argmax_a Q(s, a)
    rewards = result.reward(obs, acts, next_obs)       # Q(s, a) - gamma V(s'), for irlhf.rl.wrappers
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from tqdm.auto import tqdm

from irlhf.core.config import BaseConfig, check_bool, check_choice, check_hidden_sizes, check_number
from irlhf.core.errors import ValidationError
from irlhf.imitation.bc import _check_demos, _demo_arrays, resolve_spaces
from irlhf.nn.mlp import ACTIVATIONS
from irlhf.nn.policies import MLPPolicy, Policy

__all__ = ["Config", "Result", "SoftQReward", "iq_loss", "soft_value", "train"]

DIVERGENCES = ("chi2", "none")


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """Offline IQ-Learn settings (defaults: the authors' offline CartPole run, ``agent=softq method.chi=True
    method.loss=value_expert agent.init_temp=0.001``, except the temperature, see ``alpha``).

    alpha: soft temperature of V and pi (> 0). Small alpha makes V ~ max_a Q and the BC term a margin loss.
    gamma: discount in [0, 1).
    divergence: "chi2" (phi(x) = x - x^2 / (4 chi_alpha), the TD-consistency penalty) or "none" (phi(x) = x;
      the loss is then soft behaviour cloning).
    chi_alpha: alpha_chi of the chi^2 divergence (> 0); the penalty weight is 1 / (4 chi_alpha). Authors: 0.5.
    hidden_sizes / activation: the Q network (``irlhf.nn.mlp``), output one Q value per action.
    lr: Adam step size.  batch_size: expert transitions per update (all of them when there are fewer).
    updates: number of gradient updates.
    normalize_obs: standardise Box observations with the demonstrations' mean / std (stored in the module).
    log_every: updates between history records (and callback calls).
    seed: seeds the initialisation and the minibatches.  progress: show a progress bar.
    """

    alpha: float = 0.01
    gamma: float = 0.99
    divergence: str = "chi2"
    chi_alpha: float = 0.5
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "elu"
    lr: float = 1e-3
    batch_size: int = 32
    updates: int = 5000
    normalize_obs: bool = True
    log_every: int = 100
    seed: int = 0
    progress: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden_sizes", check_hidden_sizes("hidden_sizes", self.hidden_sizes))
        check_number("alpha", self.alpha, low=0, low_open=True)
        check_number("gamma", self.gamma, low=0, high=1, high_open=True)
        check_choice("divergence", self.divergence, DIVERGENCES)
        check_number("chi_alpha", self.chi_alpha, low=0, low_open=True)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        check_number("lr", self.lr, low=0, low_open=True)
        check_number("batch_size", self.batch_size, low=1, integer=True)
        check_number("updates", self.updates, low=1, integer=True)
        check_bool("normalize_obs", self.normalize_obs)
        check_number("log_every", self.log_every, low=1, integer=True)
        check_number("seed", self.seed, low=0, integer=True)
        check_bool("progress", self.progress)


# -- the objective ------------------------------------------------------------------------------
def soft_value(q: torch.Tensor, alpha: float) -> torch.Tensor:
    """V = alpha * logsumexp(Q / alpha) over the last axis: (N, A) -> (N,)."""
    return alpha * torch.logsumexp(q / alpha, dim=-1)


def iq_loss(q: torch.Tensor, q_next: torch.Tensor, acts: torch.Tensor, dones: torch.Tensor, *, alpha: float,
            gamma: float, divergence: str = "chi2", chi_alpha: float = 0.5,
            as_float: bool = True) -> tuple[torch.Tensor, dict[str, Any]]:
    """The offline IQ-Learn loss (module docstring) on a batch.

    q, q_next: Q(s, .) and Q(s', .), (N, A); acts (N,) action indices 0..A-1; dones (N,) (1 = s' terminal).
    Returns the scalar loss and its parts: softq_loss = -E[r], value_loss = E[V(s) - gamma (1 - d) V(s')],
    chi2_loss = E[r^2] / (4 chi_alpha) (0 for "none"), reward = E[r], v = E[V(s)]; floats, or detached
    tensors with ``as_float=False`` (no device sync per update).
    """
    check_choice("divergence", divergence, DIVERGENCES)
    v = soft_value(q, alpha)
    y = gamma * (1.0 - dones.to(q.dtype)) * soft_value(q_next, alpha)
    r = q.gather(1, acts.long()[:, None])[:, 0] - y
    softq_loss = -r.mean()
    value_loss = (v - y).mean()
    loss = softq_loss + value_loss
    chi2_loss = torch.zeros((), dtype=q.dtype)
    if divergence == "chi2":
        chi2_loss = (r * r).mean() / (4.0 * chi_alpha)
        loss = loss + chi2_loss
    parts = {"softq_loss": softq_loss, "value_loss": value_loss, "chi2_loss": chi2_loss, "reward": r.mean(),
             "v": v.mean()}
    return loss, {k: float(t.detach()) for k, t in parts.items()} if as_float else {k: t.detach() for k, t in parts.items()}


# -- results ------------------------------------------------------------------------------------
class SoftQReward:
    """The recovered reward r(s, a, s') = Q(s, a) - gamma V(s'), V = alpha logsumexp(Q / alpha).

    ``reward(obs (n, ...), acts (n,), next_obs (n, ...)) -> (n,)`` numpy (the batched form
    ``irlhf.rl.wrappers.RewardVecEnvWrapper`` calls); a single (obs, act, next_obs) gives a float (the
    ``RewardWrapper`` form). It cannot see episode ends: V(s') is used even when s' is terminal.
    """

    def __init__(self, q_module: MLPPolicy, alpha: float, gamma: float):
        self.q_module, self.alpha, self.gamma = q_module, float(alpha), float(gamma)

    def __call__(self, obs: Any, acts: Any, next_obs: Any) -> np.ndarray | float:
        space = self.q_module.observation_space
        x, xn = np.array(obs), np.array(next_obs)  # copies: torch warns on read-only arrays
        single = x.shape == tuple(space.shape)
        if single:
            x, xn, acts = x[None], xn[None], np.asarray(acts).reshape(1)
        a = np.asarray(acts).reshape(-1)
        if x.shape[1:] != tuple(space.shape) or xn.shape != x.shape or len(a) != len(x):
            raise ValidationError(f"reward: obs {x.shape}, acts {a.shape}, next_obs {xn.shape}; expected (n, "
                                  f"*{tuple(space.shape)}), (n,), (n, *{tuple(space.shape)})")
        n_act, start = int(self.q_module.action_space.n), int(self.q_module.action_space.start)
        if np.any(a != np.round(a)) or a.min() < start or a.max() >= start + n_act:
            raise ValidationError(f"reward: actions {a}; expected integers in [{start}, {start + n_act})")
        self.q_module.eval()
        with torch.no_grad():
            q = self.q_module(x)
            v_next = soft_value(self.q_module(xn), self.alpha)
            r = q.gather(1, torch.as_tensor(a - start).long()[:, None])[:, 0] - self.gamma * v_next
        out = r.numpy().astype(np.float64)
        return float(out[0]) if single else out


@dataclasses.dataclass
class Result:
    """policy: ``Policy`` acting argmax_a Q (its module's logits are Q / alpha, so ``policy.module.distribution``
    is softmax(Q / alpha)); reward: the ``SoftQReward``; q_net: the ``MLPPolicy`` module whose forward gives
    Q(s, .) (N, A); history: one dict per ``log_every`` updates (update, loss, softq_loss, value_loss,
    chi2_loss, reward, v, expert_accuracy, seconds); n_transitions: expert transitions trained on."""

    policy: Policy
    reward: SoftQReward
    q_net: MLPPolicy
    history: list[dict]
    n_transitions: int
    config: Config


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
def _transitions(demos: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    obs, acts, next_obs, dones = _demo_arrays(demos, ("obs", "acts", "next_obs", "dones"), "transition")
    if next_obs.shape != obs.shape:
        raise ValidationError(f"demos: obs {obs.shape}, next_obs {next_obs.shape}; expected next_obs shaped like obs")
    return obs, acts, next_obs, dones.reshape(len(obs)).astype(bool)


# -- training -----------------------------------------------------------------------------------
def train(env: Any, demos: Any, config: Config = Config(), *,
          callback: Callable[[dict, Policy], bool | None] | None = None) -> Result:
    """Fit Q by offline IQ-Learn on the demonstrations (no environment steps).

    env: a gymnasium id, a ``gymnasium.Env`` or a pair (observation_space, action_space); the action space
    must be Discrete. demos: a list of ``Trajectory`` or a ``Transitions`` (anything with obs, acts,
    next_obs, dones). callback(record, policy), called with each history record and the current greedy
    policy, may return True to stop early.
    """
    if not isinstance(config, Config):
        raise ValidationError(f"config: {type(config).__name__}; expected irlhf.irl.iq_learn.Config")
    obs_space, act_space = resolve_spaces(env)
    if not isinstance(act_space, spaces.Discrete):
        raise ValidationError(f"action_space={act_space}: continuous actions are not implemented yet; "
                              "expected a Discrete action space (offline discrete IQ-Learn only; the online and "
                              "continuous-action versions are not implemented)")
    obs_np, acts_np, next_np, dones_np = _transitions(demos)
    acts_np = _check_demos(obs_np, acts_np, obs_space, act_space)
    _check_demos(next_np, acts_np, obs_space, act_space)  # next observations must fit the space too
    n = len(obs_np)

    mean = scale = None
    if config.normalize_obs and isinstance(obs_space, spaces.Box):
        x = obs_np.reshape(n, -1).astype(np.float64)
        mean, std = x.mean(axis=0), x.std(axis=0)
        scale = np.where(std > 1e-8 * np.maximum(1.0, np.abs(mean)), std, 1.0)
    q_module = MLPPolicy(obs_space, act_space, config.hidden_sizes, config.activation,
                         obs_mean=mean, obs_scale=scale, seed=config.seed)
    with torch.no_grad():
        x_all = q_module.preprocess(obs_np if isinstance(obs_space, spaces.Discrete) else obs_np.reshape(n, -1))
        xn_all = q_module.preprocess(next_np if isinstance(obs_space, spaces.Discrete) else next_np.reshape(n, -1))
    a_all = q_module._action_tensor(acts_np)
    d_all = torch.as_tensor(dones_np, dtype=torch.float32)

    gen = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.Adam(q_module.parameters(), lr=config.lr)
    history: list[dict] = []
    bar = tqdm(total=config.updates, desc="iq_learn", disable=not config.progress, leave=False)
    t0 = time.perf_counter()
    callback_seconds = 0.0
    full = config.batch_size >= n
    kw = dict(alpha=config.alpha, gamma=config.gamma, divergence=config.divergence, chi_alpha=config.chi_alpha)
    for update in range(1, config.updates + 1):
        q_module.train()
        if full:
            xb, xnb, ab, db = x_all, xn_all, a_all, d_all
        else:
            idx = torch.randperm(n, generator=gen)[:config.batch_size]
            xb, xnb, ab, db = x_all[idx], xn_all[idx], a_all[idx], d_all[idx]
        q_both = q_module.net(torch.cat([xb, xnb]))
        loss, parts = iq_loss(q_both[:len(xb)], q_both[len(xb):], ab, db, as_float=False, **kw)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        bar.update(1)
        if update % config.log_every == 0 or update == config.updates:
            loss_value = float(loss.detach())
            if not np.isfinite(loss_value):
                raise ValidationError(f"loss={loss_value}: training diverged; expected a smaller lr or larger alpha")
            with torch.no_grad():
                accuracy = float((q_module.net(x_all).argmax(dim=-1) == a_all).double().mean())
            record = {"update": update, "loss": loss_value, **{k: float(t) for k, t in parts.items()},
                      "expert_accuracy": accuracy, "seconds": time.perf_counter() - t0 - callback_seconds}
            history.append(record)
            bar.set_postfix(loss=f"{loss_value:.4g}", acc=f"{accuracy:.3f}", refresh=False)
            if callback is not None:
                q_module.eval()
                t_cb = time.perf_counter()
                stop = callback(record, policy_from_q(q_module, config.alpha, config.seed))
                callback_seconds += time.perf_counter() - t_cb  # "seconds" is training time only
                if stop:
                    break
    bar.close()
    q_module.eval()
    return Result(policy=policy_from_q(q_module, config.alpha, config.seed),
                  reward=SoftQReward(q_module, config.alpha, config.gamma), q_net=q_module, history=history,
                  n_transitions=n, config=config)
