"""Supervised policy fitting on (state, action) pairs: the step behaviour cloning is made of, and the warm
start that GAIL, AIRL and GCL give their generator.

    fit = fit_policy(obs_space, act_space, obs, acts, hidden_sizes=(64, 64), seed=0)   # -> PolicyFit
    policy = warm_start_policy("CartPole-v1", demos, seed=0)                          # tanh units, BC defaults

The objective (``irlhf.imitation.bc`` states it with the paper) is

    L(theta) = E_D[ l(pi_theta(s), a) ] - entropy_coef * E_D[ H(pi_theta(. | s)) ] + (l2 / 2) ||theta||^2,

l = -log pi_theta(a | s) (cross-entropy for Discrete actions, Gaussian negative log-likelihood for Box) or
||mean_theta(s) - a||^2 with ``loss="mse"``; minibatch Adam, a seeded held-out split for early stopping,
and the weights of the epoch with the lowest validation loss. Options are validated by the caller's config
(``bc.Config``); the arrays by ``irlhf.data.demos.check_demos``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from tqdm.auto import tqdm

from irlhf.core.errors import ValidationError
from irlhf.data.demos import check_demos, demo_arrays, obs_stats
from irlhf.envs.spaces import resolve_spaces
from irlhf.nn.policies import MLPPolicy, Policy

__all__ = ["PolicyFit", "fit_policy", "policy_losses", "warm_start_policy"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@dataclasses.dataclass
class PolicyFit:
    """policy: the callable ``Policy`` (``policy.module``: the ``MLPPolicy`` with the best epoch's weights);
    history: one dict per epoch (epoch, train_loss, val_loss, val_accuracy (Discrete) or val_mse (Box),
    entropy, seconds; val_* None without a validation split); best_epoch (1-based); n_train / n_val."""

    policy: Policy
    history: list[dict]
    best_epoch: int
    n_train: int
    n_val: int


def policy_losses(module: MLPPolicy, inputs: torch.Tensor, acts: torch.Tensor, mse: bool
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-batch imitation loss (scalar, no bonus), mean entropy, and the network output.

    ``inputs`` are already encoded (``module.encode``), so the fixed normalisation runs once per fit, not per
    step; the log-likelihoods and entropies are written in closed form (the same values as
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
        loss, _, out = policy_losses(module, obs, acts, mse)
        metrics = {"val_loss": float(loss)}
        if module.discrete:
            metrics["val_accuracy"] = float((out.argmax(dim=-1) == acts).double().mean())
        else:
            metrics["val_mse"] = float(((out - acts) ** 2).mean())
    return metrics


def fit_policy(obs_space: spaces.Space, act_space: spaces.Space, obs: np.ndarray, acts: np.ndarray, *,
               hidden_sizes: Sequence[int] = (64, 64), activation: str = "relu", lr: float = 1e-3,
               batch_size: int = 64, epochs: int = 100, validation_fraction: float = 0.1,
               patience: int | None = 10, entropy_coef: float = 1e-3, l2: float = 0.0, loss: str = "gaussian",
               normalize_obs: bool = True, seed: int = 0, progress: bool = False, desc: str = "bc",
               callback: Callable[[dict, Policy], bool | None] | None = None) -> PolicyFit:
    """Fit an ``MLPPolicy`` to checked demonstration arrays (module docstring). The defaults are the early-stopped
    fit (10% held out, patience 10, at most 100 epochs) the warm starts and D-REX were measured with;
    ``irlhf.imitation.bc.Config`` passes its own (no split, 200 epochs). Same seed, same weights, with or without
    a callback.

    callback(record, policy) is called after every epoch with its history record and the policy as it is after
    that epoch; returning True stops training. Its time is left out of the records' "seconds"."""
    discrete = isinstance(act_space, spaces.Discrete)
    mse = (not discrete) and loss == "mse"

    # split (seeded), then fit the observation normalisation on the training part only
    gen = torch.Generator().manual_seed(seed)
    n = len(obs)
    n_val = 0
    if validation_fraction > 0 and n >= 2:
        n_val = min(n - 1, max(1, int(round(validation_fraction * n))))
    perm = torch.randperm(n, generator=gen).numpy()
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    mean, scale = obs_stats(obs[train_idx], obs_space, normalize_obs)

    module = MLPPolicy(obs_space, act_space, hidden_sizes, activation, obs_mean=mean, obs_scale=scale, seed=seed)
    a_all = module.action_tensor(acts)
    with torch.no_grad():
        inputs = module.encode(obs)  # normalise / one-hot once; training feeds module.net directly
    x_tr, a_tr = inputs[train_idx], a_all[train_idx]
    x_va, a_va = inputs[val_idx], a_all[val_idx]

    weights = list(module.net.parameters())
    try:  # the fused kernel updates all tensors in one call (CPU support since torch 2.4)
        optimizer = torch.optim.Adam(module.parameters(), lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        optimizer = torch.optim.Adam(module.parameters(), lr=lr)
    history: list[dict] = []
    best_loss, best_epoch, best_state, since_best = math.inf, 0, None, 0
    bar = tqdm(total=epochs, desc=desc, disable=not progress, leave=False)
    t0, callback_seconds, stop = time.perf_counter(), 0.0, False
    n_tr = len(train_idx)
    for epoch in range(1, epochs + 1):
        module.train()
        order = torch.randperm(n_tr, generator=gen)
        total, total_ent = torch.zeros(()), torch.zeros(())
        for start in range(0, n_tr, batch_size):
            idx = order[start:start + batch_size]
            step_loss, ent, _ = policy_losses(module, x_tr[idx], a_tr[idx], mse)
            objective = step_loss - entropy_coef * ent
            if l2 > 0:
                objective = objective + 0.5 * l2 * sum((w * w).sum() for w in weights)
            optimizer.zero_grad(set_to_none=True)
            objective.backward()
            optimizer.step()
            total += step_loss.detach() * len(idx)  # summed as tensors: one sync per epoch, not per step
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
        record["seconds"] = time.perf_counter() - t0 - callback_seconds
        history.append(record)
        if callback is not None:
            c0 = time.perf_counter()
            stop = bool(callback(record, Policy(module)))
            callback_seconds += time.perf_counter() - c0
        bar.update(1)
        if n_val:
            bar.set_postfix(val_loss=f"{current:.4g}", refresh=False)
        if current < best_loss:
            best_loss, best_epoch, since_best = current, epoch, 0
            if n_val:  # without validation the last epoch is kept, so no copy is needed
                best_state = copy.deepcopy(module.state_dict())
        else:
            since_best += 1
            if n_val and patience is not None and since_best >= patience:
                break
        if stop:
            break
    bar.close()
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return PolicyFit(policy=Policy(module), history=history, best_epoch=best_epoch, n_train=n_tr, n_val=n_val)


def resolve_bc_warm_start(bc_warm_start: bool | None, algo: str) -> bool:
    """A config's ``bc_warm_start``: None = on for PPO, off otherwise; True needs PPO (the warm start builds a
    PPO actor, ``irlhf.rl.sb3.ppo_from_bc``)."""
    if bc_warm_start is None:
        return algo == "ppo"
    if bc_warm_start and algo != "ppo":
        raise ValidationError(f"bc_warm_start=True with algo={algo!r}: expected algo='ppo'")
    return bool(bc_warm_start)


def warm_start_policy(env: Any, demos: Any, seed: int = 0) -> Policy:
    """The behaviour-cloning policy adversarial and cost-learning IRL start their generator from (and GCL uses
    as its demo density): ``fit_policy``'s early-stopped defaults with tanh units (as SB3's PPO actor), not
    BC's own defaults (no split): the warm-started methods' results were measured with this fit."""
    obs_space, act_space = resolve_spaces(env)
    obs, acts = demo_arrays(demos)
    acts = check_demos(obs, acts, obs_space, act_space)
    return fit_policy(obs_space, act_space, obs, acts, activation="tanh", seed=seed).policy
