"""Behaviour cloning: imitation as supervised learning on the expert's (state, action) pairs.

Given demonstrations D = {(s, a)} from an expert pi*, fit pi_theta by minimising

    L(theta) = E_D[ l(pi_theta(s), a) ] - entropy_coef * E_D[ H(pi_theta(. | s)) ] + (l2 / 2) ||theta||^2

with l = -log pi_theta(a | s) (cross-entropy for Discrete actions, Gaussian negative log-likelihood for
Box actions) or, for Box actions with ``loss="mse"``, the squared error ||mean_theta(s) - a||^2 averaged
over action dimensions. Minibatch Adam; a held-out split of the demonstrations decides early stopping
and the returned weights are those of the epoch with the lowest validation loss.

BC ignores that the learner's own mistakes move it off the expert's state distribution (errors compound,
O(eps T^2)); DAgger (:mod:`irlhf.imitation.dagger`) fixes that by querying the expert on the learner's states.

    result = bc.train("CartPole-v1", demos, bc.Config())
    actions = result.policy(obs_batch)
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import numpy as np
import torch
from gymnasium import spaces
from tqdm.auto import tqdm

from irlhf.core.config import (BaseConfig, NonNegative, OneOf, Positive, PositiveInt, Range, Seed, Widths, check_bool,
                               check_choice, check_hidden_sizes, check_number)
from irlhf.core.errors import ValidationError, describe
from irlhf.data.types import Trajectory, flatten_trajectories
from irlhf.nn.mlp import ACTIVATIONS
from irlhf.nn.policies import MLPPolicy, Policy, check_spaces, load_policy, save_policy

__all__ = ["Config", "Result", "train", "resolve_spaces", "save_policy", "load_policy"]


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """Behaviour-cloning settings.

    hidden_sizes: widths of the policy network's hidden layers; () = a linear policy.
    activation: a key of ``irlhf.nn.ACTIVATIONS`` (relu, tanh, ...).
    lr: Adam step size.  batch_size: minibatch size (the last batch of an epoch may be smaller).
    epochs: maximum number of passes over the training split.
    validation_fraction: share of the samples held out (in [0, 1)); at least one sample is held out when
      > 0 and there are >= 2 samples. 0 = no validation: no early stopping, the last epoch's weights.
    patience: stop after this many epochs without a lower validation loss (None = run all epochs; the
      best epoch's weights are still restored).
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
    epochs: PositiveInt = 100
    validation_fraction: Annotated[float, Range(0, 1, high_open=True)] = 0.1
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


# -- inputs ------------------------------------------------------------------------------------
def resolve_spaces(env: Any) -> tuple[spaces.Space, spaces.Space]:
    """(observation_space, action_space) from a gymnasium env id, a gymnasium.Env, or a pair of spaces."""
    import gymnasium

    if isinstance(env, str):
        try:
            made = gymnasium.make(env)
        except Exception as exc:  # NameNotFound, DependencyNotInstalled, bad kwargs...
            raise ValidationError(f"env={env!r}: could not be made with gymnasium.make "
                                  f"({type(exc).__name__}: {exc}); expected a registered environment id") from None
        try:
            obs_space, act_space = made.observation_space, made.action_space
        finally:
            made.close()
    elif isinstance(env, gymnasium.Env):
        obs_space, act_space = env.observation_space, env.action_space
    elif isinstance(env, (tuple, list)) and len(env) == 2:
        obs_space, act_space = env
    else:
        raise ValidationError(f"env={describe(env)}: expected an environment id, a gymnasium.Env, "
                              "or a pair (observation_space, action_space)")
    check_spaces(obs_space, act_space)
    return obs_space, act_space


def _demo_arrays(demos: Any, fields: tuple[str, ...] = ("obs", "acts"), unit: str = "sample"
                 ) -> tuple[np.ndarray, ...]:
    """Copies of the ``fields`` arrays (default obs, acts) from a list of Trajectory, Transitions, or anything
    with those attributes: numeric, non-empty, finite; errors count rows as ``unit``s."""
    if isinstance(demos, Trajectory):
        demos = [demos]
    if isinstance(demos, Sequence) and not isinstance(demos, (str, bytes)):
        if len(demos) == 0:
            raise ValidationError("demos: empty list; expected at least one Trajectory")
        demos = flatten_trajectories(demos)
    if not all(hasattr(demos, k) for k in fields):
        raise ValidationError(f"demos: {type(demos).__name__}; expected a list of Trajectory or Transitions")
    try:
        arrays = tuple(np.array(getattr(demos, k), copy=True) for k in fields)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"demos: {' / '.join(fields)} not numeric arrays ({exc})") from None
    for name, a in zip(fields, arrays):
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
            raise ValidationError(f"demos.{name}: dtype {a.dtype}; expected numbers")
        if a.ndim == 0 or len(a) == 0:
            raise ValidationError(f"demos.{name}: shape {a.shape}; expected at least one {unit}")
        if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
            i = int(np.flatnonzero((~np.isfinite(a.reshape(len(a), -1))).any(axis=1))[0])
            raise ValidationError(f"demos.{name}: non-finite value in {unit} {i}; expected finite numbers")
    if len({len(a) for a in arrays}) > 1:
        counts = ", ".join(f"{len(a)} {k}" for k, a in zip(fields, arrays))
        raise ValidationError(f"demos: {counts} ({unit}s); expected equal counts")
    return arrays


def _check_demos(obs: np.ndarray, acts: np.ndarray, obs_space: spaces.Space, act_space: spaces.Space) -> np.ndarray:
    """Check the demos against the spaces; return the actions in the dtype training uses."""
    if obs.shape[1:] != tuple(obs_space.shape):
        raise ValidationError(f"demos.obs: shape {obs.shape}; expected (N, *{tuple(obs_space.shape)}) to match "
                              f"observation_space {obs_space}")
    if isinstance(obs_space, spaces.Discrete):
        lo, hi = int(obs_space.start), int(obs_space.start + obs_space.n - 1)
        if np.any(obs != np.round(obs)) or obs.min() < lo or obs.max() > hi:
            raise ValidationError(f"demos.obs: values in [{obs.min()}, {obs.max()}]; expected integers in "
                                  f"[{lo}, {hi}] for {obs_space}")
    if isinstance(act_space, spaces.Discrete):
        if acts.ndim == 2 and acts.shape[1] == 1:
            acts = acts[:, 0]
        if acts.ndim != 1:
            raise ValidationError(f"demos.acts: shape {acts.shape}; expected (N,) integer actions for {act_space}")
        lo, hi = int(act_space.start), int(act_space.start + act_space.n - 1)
        bad = np.flatnonzero((acts != np.round(acts)) | (acts < lo) | (acts > hi))
        if bad.size:
            raise ValidationError(f"demos.acts[{int(bad[0])}]={acts[bad[0]]!r}: expected an integer in [{lo}, {hi}] "
                                  f"for {act_space}")
        return acts.astype(np.int64)
    if acts.shape[1:] != tuple(act_space.shape):
        raise ValidationError(f"demos.acts: shape {acts.shape}; expected (N, *{tuple(act_space.shape)}) to match "
                              f"action_space {act_space}")
    return acts.astype(np.float32)


def _obs_stats(obs: np.ndarray, obs_space: spaces.Space, enabled: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
    if not enabled or isinstance(obs_space, spaces.Discrete):
        return None, None
    x = obs.reshape(len(obs), -1).astype(np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0)
    return mean, np.where(std > 1e-8 * np.maximum(1.0, np.abs(mean)), std, 1.0)


# -- training ----------------------------------------------------------------------------------
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _losses(module: MLPPolicy, inputs: torch.Tensor, acts: torch.Tensor, mse: bool):
    """Per-batch imitation loss (scalar, no bonus), mean entropy, and the network output.

    ``inputs`` are already preprocessed (``module.preprocess``), so the fixed normalisation runs once per
    fit, not per step; the log-likelihoods and entropies are written in closed form (the same values as
    torch.distributions, without its per-call argument checks).
    """
    out = module.net(inputs)
    if module.discrete:
        logp = torch.log_softmax(out, dim=-1)
        nll = -logp.gather(1, acts[:, None]).mean()
        return nll, -(logp.exp() * logp).sum(dim=-1).mean(), out
    log_std = module.log_std
    if mse:
        loss = ((out - acts) ** 2).mean()
    else:  # -log N(a; out, diag(exp(log_std))^2), summed over action dimensions
        z = (acts - out) * torch.exp(-log_std)
        loss = (0.5 * z * z + log_std + _HALF_LOG_2PI).sum(dim=-1).mean()
    return loss, (log_std + 0.5 + _HALF_LOG_2PI).sum(), out


def _evaluate(module: MLPPolicy, obs: torch.Tensor, acts: torch.Tensor, mse: bool) -> dict[str, float]:
    with torch.no_grad():
        loss, ent, out = _losses(module, obs, acts, mse)
        metrics = {"val_loss": float(loss)}
        if module.discrete:
            metrics["val_accuracy"] = float((out.argmax(dim=-1) == acts).double().mean())
        else:
            metrics["val_mse"] = float(((out - acts) ** 2).mean())
    return metrics


def train(env: Any, demos: Any, config: Config = Config()) -> Result:
    """Fit a policy to the demonstrations by behaviour cloning.

    env: a gymnasium environment id (made once to read its spaces, then closed), a ``gymnasium.Env``, or a
    pair ``(observation_space, action_space)``. demos: a list of ``Trajectory``, ``Transitions`` (or any
    object with ``obs`` (N, *obs_shape) and ``acts`` arrays).
    """
    if not isinstance(config, Config):
        raise ValidationError(f"config: {type(config).__name__}; expected irlhf.imitation.bc.Config")
    obs_space, act_space = resolve_spaces(env)
    obs_np, acts_np = _demo_arrays(demos)
    acts_np = _check_demos(obs_np, acts_np, obs_space, act_space)
    discrete = isinstance(act_space, spaces.Discrete)
    mse = (not discrete) and config.loss == "mse"

    # split (seeded), then fit the observation normalisation on the training part only
    gen = torch.Generator().manual_seed(config.seed)
    n = len(obs_np)
    n_val = 0
    if config.validation_fraction > 0 and n >= 2:
        n_val = min(n - 1, max(1, int(round(config.validation_fraction * n))))
    perm = torch.randperm(n, generator=gen).numpy()
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    mean, scale = _obs_stats(obs_np[train_idx], obs_space, config.normalize_obs)

    module = MLPPolicy(obs_space, act_space, config.hidden_sizes, config.activation,
                       obs_mean=mean, obs_scale=scale, seed=config.seed)
    if isinstance(obs_space, spaces.Discrete):
        x_all = torch.as_tensor(obs_np).long()  # raw ids; the module one-hot encodes them
    else:
        x_all = torch.as_tensor(obs_np.reshape(n, -1), dtype=torch.float32)
    a_all = module._action_tensor(acts_np)
    with torch.no_grad():
        inputs = module.preprocess(x_all)  # normalise / one-hot once; training feeds module.net directly
    x_tr, a_tr = inputs[train_idx], a_all[train_idx]
    x_va, a_va = inputs[val_idx], a_all[val_idx]

    weights = list(module.net.parameters())
    try:  # the fused kernel updates all tensors in one call (CPU support since torch 2.4)
        optimizer = torch.optim.Adam(module.parameters(), lr=config.lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        optimizer = torch.optim.Adam(module.parameters(), lr=config.lr)
    history: list[dict] = []
    best_loss, best_epoch, best_state, since_best = math.inf, 0, None, 0
    bar = tqdm(total=config.epochs, desc="bc", disable=not config.progress, leave=False)
    t0 = time.perf_counter()
    n_tr = len(train_idx)
    for epoch in range(1, config.epochs + 1):
        module.train()
        order = torch.randperm(n_tr, generator=gen)
        total, total_ent = torch.zeros(()), torch.zeros(())
        for start in range(0, n_tr, config.batch_size):
            idx = order[start:start + config.batch_size]
            loss, ent, _ = _losses(module, x_tr[idx], a_tr[idx], mse)
            objective = loss - config.entropy_coef * ent
            if config.l2 > 0:
                objective = objective + 0.5 * config.l2 * sum((w * w).sum() for w in weights)
            optimizer.zero_grad(set_to_none=True)
            objective.backward()
            optimizer.step()
            total += loss.detach() * len(idx)  # summed as tensors: one sync per epoch, not per step
            total_ent += ent.detach() * len(idx)
        module.eval()
        record: dict[str, Any] = {"epoch": epoch, "train_loss": float(total) / n_tr, "entropy": float(total_ent) / n_tr}
        if n_val:
            record.update(_evaluate(module, x_va, a_va, mse))
            current = record["val_loss"]
        else:
            record.update({"val_loss": None, "val_accuracy" if discrete else "val_mse": None})
            current = -epoch  # no validation: the latest epoch is the best
        if not math.isfinite(record["train_loss"]):
            raise ValidationError(f"train_loss={record['train_loss']}: training diverged; expected a smaller lr")
        record["seconds"] = time.perf_counter() - t0
        history.append(record)
        bar.update(1)
        if n_val:
            bar.set_postfix(val_loss=f"{current:.4g}", refresh=False)
        if current < best_loss:
            best_loss, best_epoch, since_best = current, epoch, 0
            if n_val:  # without validation the last epoch is kept, so no copy is needed
                best_state = copy.deepcopy(module.state_dict())
        else:
            since_best += 1
            if n_val and config.patience is not None and since_best >= config.patience:
                break
    bar.close()
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return Result(policy=Policy(module), history=history, best_epoch=best_epoch, n_train=n_tr, n_val=n_val,
                  config=config)
