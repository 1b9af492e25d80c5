"""Behaviour cloning: imitation as supervised learning on the expert's (state, action) pairs.

Given demonstrations D = {(s, a)} from an expert pi*, fit pi_theta by minimising

    L(theta) = E_D[ l(pi_theta(s), a) ] - entropy_coef * E_D[ H(pi_theta(. | s)) ] + (l2 / 2) ||theta||^2

with l = -log pi_theta(a | s) (cross-entropy for Discrete actions, Gaussian negative log-likelihood for
Box actions) or, for Box actions with ``loss="mse"``, the squared error ||mean_theta(s) - a||^2 averaged
over action dimensions (Pomerleau 1991, "Efficient Training of Artificial Neural Networks for Autonomous
Navigation"). Minibatch Adam for a fixed number of epochs on all the demonstrations by default; with a
held-out split (``validation_fraction > 0``) it stops early and returns the epoch with the lowest validation
loss (``irlhf.rl.pretrain.fit_policy``, the fitting step GAIL, AIRL and GCL's warm starts share).

BC ignores that the learner's own mistakes move it off the expert's state distribution (errors compound,
O(eps T^2)); DAgger (:mod:`irlhf.imitation.dagger`) fixes that by querying the expert on the learner's states.

    result = bc.train("CartPole-v1", demos, bc.Config())
    actions = result.policy(obs_batch)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Annotated, Any, Literal

from irlhf.core.config import BaseConfig, NonNegative, OneOf, Positive, PositiveInt, Range, Seed, Widths
from irlhf.core.errors import ValidationError
from irlhf.data.demos import check_demos, demo_arrays
from irlhf.envs.spaces import resolve_spaces
from irlhf.nn.mlp import ACTIVATIONS
from irlhf.nn.policies import Policy, load_policy, save_policy
from irlhf.rl.pretrain import fit_policy

__all__ = ["Config", "Result", "train", "resolve_spaces", "save_policy", "load_policy"]


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """Behaviour-cloning settings.

    hidden_sizes: widths of the policy network's hidden layers; () = a linear policy.
    activation: a key of ``irlhf.nn.ACTIVATIONS`` (relu, tanh, ...).
    lr: Adam step size.  batch_size: minibatch size (the last batch of an epoch may be smaller).
    epochs: maximum number of passes over the training split; default 200.
    validation_fraction: share of the samples held out (in [0, 1)); at least one sample is held out when
      > 0 and there are >= 2 samples. 0 (default) = no validation: no early stopping, the last epoch's
      weights. From 1-10 expert trajectories a split of 10% with early stopping scored lower on every
      classic-control task (LunarLander from 4: 48 against 192; RESULTS.md "BC without early stopping").
    patience: with a validation split, stop after this many epochs without a lower validation loss (None = run
      all epochs; the best epoch's weights are still restored); default 10.
    entropy_coef: weight of the entropy bonus (>= 0), keeps the policy from collapsing on noisy demos;
      imitation's default 1e-3. With ``loss="mse"`` the log-std is not trained and the bonus does nothing.
    l2: L2 penalty (l2 / 2) ||theta||^2 on the network weights (not the Gaussian log-std), >= 0.
    loss: for Box actions, "gaussian" (negative log-likelihood, learns the log-std too) or "mse"
      (regression of the mean). Ignored for Discrete actions (always cross-entropy).
    normalize_obs: standardise Box observations with the demonstrations' mean / std (constant features
      get scale 1); the shift and scale live in the policy, so acting uses them too.
    seed: seeds the initialisation, the validation split and the minibatch order; same seed, same weights.
    progress: show a progress bar.
    """

    hidden_sizes: Widths = (64, 64)
    activation: Annotated[str, OneOf(ACTIVATIONS)] = "relu"
    lr: Positive = 1e-3
    batch_size: PositiveInt = 64
    epochs: PositiveInt = 200
    validation_fraction: Annotated[float, Range(0, 1, high_open=True)] = 0.0
    patience: PositiveInt | None = 10
    entropy_coef: NonNegative = 1e-3
    l2: NonNegative = 0.0
    loss: Literal["gaussian", "mse"] = "gaussian"
    normalize_obs: bool = True
    seed: Seed = 0
    progress: bool = False


@dataclasses.dataclass
class Result:
    """policy: the callable ``Policy`` (``policy(obs_batch) -> actions``; ``policy.module`` is the torch
    ``MLPPolicy`` with the best epoch's weights); history: one dict per epoch (epoch, train_loss,
    val_loss, val_accuracy (Discrete) or val_mse (Box), entropy, seconds; val_* are None without a
    validation split); best_epoch: the epoch whose weights were kept (1-based); n_train / n_val: samples."""

    policy: Policy
    history: list[dict]
    best_epoch: int
    n_train: int
    n_val: int
    config: Config


def train(source: Any, data: Any, config: Config | None = None,
          callback: Callable[[dict, Policy], bool | None] | None = None) -> Result:
    """Fit a policy to the demonstrations by behaviour cloning.

    source: a gymnasium environment id (made once to read its spaces, then closed), a ``gymnasium.Env``, or
    a pair ``(observation_space, action_space)``. data: the demonstrations, a list of ``Trajectory``, a
    ``Transitions`` (or any object with ``obs`` (N, *obs_shape) and ``acts`` arrays).
    callback(record, policy) is called after every epoch (the policy as it is then); returning True stops
    training; its time is left out of the history's "seconds", and it does not change the training.
    """
    config = Config() if config is None else config
    if not isinstance(config, Config):
        raise ValidationError(f"config: {type(config).__name__}; expected irlhf.imitation.bc.Config")
    obs_space, act_space = resolve_spaces(source)
    obs, acts = demo_arrays(data)
    acts = check_demos(obs, acts, obs_space, act_space)
    fit = fit_policy(obs_space, act_space, obs, acts, hidden_sizes=config.hidden_sizes, activation=config.activation,
                     lr=config.lr, batch_size=config.batch_size, epochs=config.epochs,
                     validation_fraction=config.validation_fraction, patience=config.patience,
                     entropy_coef=config.entropy_coef, l2=config.l2, loss=config.loss,
                     normalize_obs=config.normalize_obs, seed=config.seed, progress=config.progress,
                     callback=callback)
    return Result(policy=fit.policy, history=fit.history, best_epoch=fit.best_epoch, n_train=fit.n_train,
                  n_val=fit.n_val, config=config)
