"""Deep maximum-entropy IRL (Wulfmeier, Ondruska & Posner 2015): the reward is a neural network of the features.

The model is MaxEnt IRL's (see :mod:`irlhf.irl.maxent`) with r_theta = net(f(s)) in place of w . f(s):
the expert is soft-optimal for r_theta, and we maximise the dual

    g(theta) = r_theta . rho_E - E_{s0 ~ d0}[V_0^theta(s0)]

Since dV_0 / dr = rho_pi (the soft policy's discounted state occupancy), dg/dr = rho_E - rho_pi and, by
the chain rule, dg/dtheta = (rho_E - rho_pi)^T dr_theta/dtheta. Each iteration therefore runs the
network forward on every state, one backward soft value iteration and one forward occupancy pass
(float64 numpy, exactly as maxent), and back-propagates the surrogate loss

    L(theta) = -(rho_E - rho_pi) . r_theta + (weight_decay / 2) ||theta||^2 + (reward_l2 / 2) ||r_theta||^2

(the rho's held fixed), whose autograd gradient is minus that of the penalised dual. An Adam (or SGD)
step follows. The dual is not concave in theta, so the result depends on the (seeded) initialisation.
The reward penalty keeps the penalised dual bounded when rho_E is attained by no policy (weight decay
alone does not for a ReLU network; docs/tabular.md, "Deep MaxEnt: why two penalties").

``result.reward_fn(other_mdp.features)`` scores the states of another world with the same kind of
features, using the feature standardisation fitted on the training world.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Annotated, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from irlhf.core.config import BaseConfig, NonNegative, NonNegativeInt, OneOf, Positive, PositiveInt, Seed, Widths
from irlhf.core.errors import ValidationError
from irlhf.envs.tabular import TabularMDP
from irlhf.planning.demo_stats import Demos, demo_log_likelihood, feature_matrix, resolve_planning
from irlhf.nn.mlp import ACTIVATIONS, DTYPES, mlp
from irlhf.planning import occupancy_measure, soft_value_iteration


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """Deep MaxEnt IRL settings.

    hidden_sizes: widths of the reward network's hidden layers (Wulfmeier et al. use two); () = linear.
    activation: one of relu, tanh, elu (or any key of ``irlhf.nn.ACTIVATIONS``).
    optimizer: "adam" or "sgd" (plain gradient descent on L).  lr: step size.
    weight_decay: L2 penalty (weight_decay / 2) ||theta||^2 on every network parameter, >= 0.
    reward_l2: penalty (reward_l2 / 2) sum_s r(s)^2 on the reward itself, >= 0; keeps the dual bounded.
      (How both defaults were chosen: docs/tabular.md.)
    iterations: gradient steps (each one soft value iteration + one occupancy pass).
    standardize: z-score each feature column over the states (constant columns become 0) before the
      network; the same shift and scale are applied by ``Result.reward_fn``.
    dtype: "float64" or "float32" for the network (planning is always float64).
    seed: seeds the network's initialisation; same seed, same result.
    horizon / infinite_horizon / initial: as in ``maxent.Config`` (None = the demonstrations' length;
      "demos" = plan from the demonstrations' empirical start states).
    progress: show a progress bar.
    """

    hidden_sizes: Widths = (64, 64)
    activation: Annotated[str, OneOf(ACTIVATIONS)] = "relu"
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: Positive = 0.01
    weight_decay: NonNegative = 0.1
    reward_l2: NonNegative = 0.01
    iterations: NonNegativeInt = 200
    standardize: bool = True
    dtype: Annotated[str, OneOf(DTYPES)] = "float64"
    seed: Seed = 0
    horizon: PositiveInt | None = None
    infinite_horizon: bool = False
    initial: Literal["demos", "mdp"] = "demos"
    progress: bool = False


@dataclasses.dataclass
class Result:
    """reward (S,) float64: the trained network on the training states; policy: soft-optimal for it,
    (H, S, A) or (S, A); net: the torch reward network (input: standardised features);
    feature_mean / feature_scale (F,): the standardisation (zeros / ones when off);
    rho_E / rho_pi (S,): expert and final policy discounted state occupancies;
    objective: the dual g at the end; history: one dict per evaluation (iteration, objective, loss,
    visitation_gap = ||rho_E - rho_pi||_1, grad_norm, seconds)."""

    reward: np.ndarray
    policy: np.ndarray
    net: torch.nn.Module
    feature_mean: np.ndarray
    feature_scale: np.ndarray
    rho_E: np.ndarray
    rho_pi: np.ndarray
    objective: float
    history: list[dict]

    def reward_fn(self, features: np.ndarray) -> np.ndarray:
        """The learned reward of any states given their features (N, F), e.g. another world's ``mdp.features``."""
        x = _check_features(features, self.feature_mean.shape[0])
        return predict(self.net, (x - self.feature_mean) / self.feature_scale)

    @property
    def weights(self) -> dict[str, np.ndarray]:
        """The network's parameters and the feature standardisation, as named float arrays (for saving)."""
        out = {name: p.detach().cpu().numpy().copy() for name, p in self.net.state_dict().items()}
        out["feature_mean"] = self.feature_mean.copy()
        out["feature_scale"] = self.feature_scale.copy()
        return out


def _check_features(features: np.ndarray, n_features: int) -> np.ndarray:
    try:
        x = np.asarray(features, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"features: not a numeric array ({exc})") from None
    if x.ndim != 2 or x.shape[1] != n_features:
        raise ValidationError(f"features: shape {x.shape}; expected (N, {n_features})")
    if not np.all(np.isfinite(x)):
        raise ValidationError("features: contains NaN or inf; expected finite values")
    return x


def standardization(phi: np.ndarray, enabled: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Column means and scales (F,) for z-scoring; constant columns get scale 1 (so they map to 0)."""
    F = phi.shape[1]
    if not enabled:
        return np.zeros(F), np.ones(F)
    mean, std = phi.mean(axis=0), phi.std(axis=0)
    return mean, np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)


def predict(net: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """net(x) for (N, F) inputs as a float64 (N,) array, without building a graph."""
    dtype = next(net.parameters()).dtype
    with torch.no_grad():
        return net(torch.as_tensor(x, dtype=dtype)).reshape(-1).double().numpy()


def objective_and_loss(mdp: TabularMDP, net: torch.nn.Module, x: torch.Tensor, rho_E: np.ndarray,
                       horizon: int | None, V_init: np.ndarray | None = None):
    """One evaluation: g(theta), the surrogate loss -(rho_E - rho_pi) . r_theta (a torch scalar with a graph),
    the reward r_theta (S,) (torch, with its graph), and the soft values V, policy pi and occupancy rho_pi.

    ``x`` (S, F): the network's inputs (already standardised); horizon None = infinite-horizon discounted.
    """
    r_t = net(x).reshape(-1)
    r = r_t.detach().double().numpy()
    if not np.all(np.isfinite(r)):
        raise ValidationError("reward network output: NaN or inf (training diverged); expected a smaller lr")
    V, _, pi = soft_value_iteration(mdp, r, horizon=horizon, V_init=V_init)
    V0 = V if horizon is None else V[0]
    rho_pi = occupancy_measure(mdp, pi, horizon=horizon)
    g = float(r @ rho_E - mdp.initial @ V0)
    gap = torch.as_tensor(rho_E - rho_pi, dtype=r_t.dtype)
    loss = -(gap * r_t).sum()
    return g, loss, r_t, V, pi, rho_pi


def train(mdp: TabularMDP, demos: Demos, config: Config | None = None, *,
          features: np.ndarray | None = None) -> Result:
    """Fit the reward network. ``demos``: list of Trajectory or an expert state occupancy (S,) / (S, A).

    ``config`` None = ``Config()``. ``features`` overrides ``mdp.features`` ((S, F) state features;
    state-action features are not supported).
    """
    config = Config() if config is None else config
    phi = feature_matrix(mdp, features)
    if phi.ndim != 2:
        raise ValidationError(f"features: shape {phi.shape}; deep MaxEnt expects state features (S, F)")
    stats, plan_mdp, H = resolve_planning(mdp, demos, config.horizon, config.infinite_horizon, config.initial)
    rho_E = stats.rho_E

    mean, scale = standardization(phi, config.standardize)
    net = mlp(phi.shape[1], config.hidden_sizes, 1, config.activation, seed=config.seed, dtype=config.dtype)
    x = torch.as_tensor((phi - mean) / scale, dtype=DTYPES[config.dtype])
    params = list(net.parameters())
    if config.optimizer == "adam":
        optimizer = torch.optim.Adam(params, lr=config.lr)
    else:
        optimizer = torch.optim.SGD(params, lr=config.lr)

    history: list[dict] = []
    V_warm = None  # infinite horizon: the last soft values seed the next solve
    bar = tqdm(total=config.iterations, desc="deep maxent", disable=not config.progress, leave=False)
    t0 = time.perf_counter()
    for k in range(config.iterations + 1):  # evaluation k at the parameters after k steps
        g, loss, r_t, V, pi, rho_pi = objective_and_loss(plan_mdp, net, x, rho_E, H, V_warm)
        if H is None:
            V_warm = V
        if config.weight_decay > 0:
            loss = loss + 0.5 * config.weight_decay * sum((p * p).sum() for p in params)
        if config.reward_l2 > 0:
            loss = loss + 0.5 * config.reward_l2 * (r_t * r_t).sum()
        record = {"iteration": k, "objective": g, "loss": float(loss.detach()),
                  "visitation_gap": float(np.abs(rho_E - rho_pi).sum())}
        if k == config.iterations:
            record["seconds"] = time.perf_counter() - t0
            history.append(record)
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        record["grad_norm"] = float(torch.sqrt(sum((p.grad * p.grad).sum() for p in params)))
        optimizer.step()
        record["seconds"] = time.perf_counter() - t0
        history.append(record)
        bar.update(1)
        bar.set_postfix(gap=f"{record['visitation_gap']:.3g}", refresh=False)
    bar.close()

    if stats.demos is not None and H is not None:
        history[-1]["demo_log_likelihood"] = demo_log_likelihood(pi, stats.demos)
    net.eval()
    return Result(reward=r_t.detach().double().numpy(), policy=pi, net=net, feature_mean=mean, feature_scale=scale,
                  rho_E=rho_E,
                  rho_pi=rho_pi, objective=g, history=history)
