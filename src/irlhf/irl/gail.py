"""GAIL (Ho & Ermon 2016, "Generative Adversarial Imitation Learning").

A discriminator D(s, a) = sigmoid(logit(s, a)) learns to tell expert state-actions (label 1) from the
policy's (label 0),

    max_D  E_expert[log D(s, a)] + E_pi[log(1 - D(s, a))],

and the policy (SB3 PPO, or SAC for continuous control) maximises a reward that grows with D. The paper's
cost log D (with D = P(policy)) is, in this module's expert-is-1 convention, the reward -log(1 - D); the
other common choices are log D (always negative: a per-step penalty, which favours ending episodes early)
and the logit log D - log(1 - D) (AIRL's form, unbiased towards either):

    reward_type "-log(1-D)" = softplus(logit)   ("log(D)" = -softplus(-logit), "logit" = logit)

-log(1 - D) is positive, a survival bonus: right for tasks whose episodes end on failure (CartPole), wrong
for tasks that end on success (MountainCar), where "log(D)" fits. The loop, the gradient penalty, the
discriminator entropy bonus and the BC warm start are in ``irlhf.irl.adversarial``.

    result = gail.train("CartPole-v1", demos, gail.Config(total_timesteps=100_000))
    result.policy(obs_batch)                    # deterministic actions
    result.reward(obs, acts, next_obs)          # the reward_type of D, (n,)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import nn

from irlhf.core.errors import ValidationError
from irlhf.irl import adversarial
from irlhf.nn.mlp import mlp

__all__ = ["Config", "GailDiscriminator", "REWARD_TYPES", "train"]

REWARD_TYPES = ("-log(1-D)", "log(D)", "logit")


@dataclasses.dataclass(frozen=True)
class Config(adversarial.Config):
    """GAIL settings: ``irlhf.irl.adversarial.Config`` (generator, rounds, discriminator) plus

    reward_type: the generator's reward from D, one of REWARD_TYPES (module docstring).
    bc_warm_start: None (default) = on for PPO, off for SAC: started from behaviour cloning, the PPO generator
      sees demonstration-like states from its first rollout, where D's reward has something to say (from a
      random start it never reaches MountainCar's flag or LunarLander's pad; docs/RESULTS.md, issue 24).
    """

    reward_type: Literal["-log(1-D)", "log(D)", "logit"] = "-log(1-D)"
    bc_warm_start: bool | None = None


def reward_from_logit(logit: torch.Tensor, reward_type: str) -> torch.Tensor:
    """The generator's reward from logit = log D - log(1 - D), (N,) -> (N,)."""
    if reward_type == "-log(1-D)":
        return nn.functional.softplus(logit)
    if reward_type == "log(D)":
        return -nn.functional.softplus(-logit)
    if reward_type == "logit":
        return logit
    raise ValidationError(f"reward_type={reward_type!r}: expected one of {REWARD_TYPES}")


class GailDiscriminator(adversarial.Discriminator):
    """logit(s, a) = MLP([obs_x, act_x]); s' and episode ends are not used."""

    def __init__(self, features: adversarial.Features, hidden_sizes: tuple[int, ...], activation: str,
                 reward_type: str, seed: int):
        super().__init__()
        self.net = mlp(features.obs_dim + features.act_dim, hidden_sizes, 1, activation, seed=seed)
        self.reward_type = reward_type

    def logit(self, x: tuple[torch.Tensor, torch.Tensor, torch.Tensor], dones: torch.Tensor,
              log_pi: torch.Tensor | None) -> torch.Tensor:
        return self.net(torch.cat([x[0], x[1]], dim=1))[:, 0]

    def policy_reward(self, logit: torch.Tensor, log_pi: torch.Tensor | None) -> torch.Tensor:
        return reward_from_logit(logit, self.reward_type)

    def reward(self, x: tuple[torch.Tensor, torch.Tensor, torch.Tensor], dones: torch.Tensor) -> torch.Tensor:
        return reward_from_logit(self.logit(x, dones, None), self.reward_type)


def train(source: str, data: Any, config: Config | None = None, *,
          callback: Callable[[dict, Any], bool | None] | None = None) -> adversarial.Result:
    """Train GAIL on ``source`` (a gymnasium id) from the demonstrations ``data`` (list of ``Trajectory`` or
    ``Transitions``).

    Returns ``irlhf.irl.adversarial.Result`` (policy, reward, discriminator, SB3 model, history).
    callback(record, policy) is called with each history record; returning True stops training.
    """
    config = Config() if config is None else config
    if not isinstance(config, Config):
        raise ValidationError(f"config: {type(config).__name__}; expected irlhf.irl.gail.Config")
    return adversarial.train(
        source, data, config,
        lambda features: GailDiscriminator(features, config.disc_hidden_sizes, config.disc_activation,
                                           config.reward_type, config.seed),
        name="gail", callback=callback)
