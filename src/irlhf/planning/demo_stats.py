"""Expert statistics for tabular IRL: discounted occupancies and feature expectations from demos.

    rho_E(s, a) = (1/N) sum_i sum_{t < T_i} gamma^t [s_t = s, a_t = a],    mu_E = sum_{s,a} rho_E(s, a) phi(s, a)

Every tabular learner (apprenticeship, mmp, maxent, deep_maxent) accepts either a list of
``Trajectory`` over the MDP's states or a precomputed expert occupancy, and reads them here;
``demo_log_likelihood`` scores a (soft) policy on the demonstrations, (1/N) sum_i sum_t log pi_t(a_t | s_t).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from irlhf.core.errors import ValidationError
from irlhf.data.types import Trajectory
from irlhf.envs.tabular import TabularMDP
from irlhf.planning import occupancy_measure, value_iteration

Demos = Sequence[Trajectory] | np.ndarray


@dataclasses.dataclass(frozen=True)
class ExpertStats:
    """rho_E (S,) expected discounted state visits per demonstration, t = 0..T-1;
    rho_E_sa (S, A) the state-action version (None when only an (S,) occupancy was given);
    horizon: the demonstrations' common length T (None when given as an occupancy)."""

    rho_E: np.ndarray
    rho_E_sa: np.ndarray | None
    horizon: int | None
    n_demos: int
    demos: list[Trajectory] | None


def check_demos(mdp: TabularMDP, demos: Sequence[Trajectory]) -> list[Trajectory]:
    """Validate tabular demonstrations: non-empty, integer state ids in [0, S), actions in [0, A)."""
    if isinstance(demos, Trajectory):
        demos = [demos]
    if len(demos) == 0:
        raise ValidationError("demos: empty; expected at least one Trajectory (or an expert occupancy array)")
    S, A = mdp.n_states, mdp.n_actions
    for k, traj in enumerate(demos):
        if not isinstance(traj, Trajectory):
            raise ValidationError(f"demos[{k}]: {type(traj).__name__}; expected a Trajectory")
        for name, values, n in (("obs", traj.obs, S), ("acts", traj.acts, A)):
            if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
                raise ValidationError(
                    f"demos[{k}].{name}: dtype {values.dtype}, shape {values.shape}; expected 1-D integer "
                    f"{'state' if name == 'obs' else 'action'} ids"
                )
            if values.size and (values.min() < 0 or values.max() >= n):
                bad = values[(values < 0) | (values >= n)][0]
                raise ValidationError(f"demos[{k}].{name}: id {bad} out of range; expected 0 <= id < {n}")
        if len(traj) == 0:
            raise ValidationError(f"demos[{k}]: no actions; expected trajectories of at least one step")
    return list(demos)


def resolve_demo_horizon(mdp: TabularMDP, demos: list[Trajectory], horizon: int | None) -> int:
    """The planning horizon: ``horizon`` or ``mdp.horizon`` or the demos' common length; all must agree."""
    lengths = sorted({len(t) for t in demos})
    H = horizon if horizon is not None else mdp.horizon
    if H is None:
        if len(lengths) > 1:
            raise ValidationError(
                f"demos: lengths {lengths[:5]} differ; set a horizon (or pass demos of one length)"
            )
        return lengths[0]
    if lengths != [H]:
        raise ValidationError(f"demos: lengths {lengths[:5]} do not match horizon={H}; expected every demo to have {H} steps")
    return int(H)


def expert_statistics(mdp: TabularMDP, demos: Demos, horizon: int | None = None, *,
                      infinite_horizon: bool = False) -> ExpertStats:
    """Empirical rho_E(s) = (1/N) sum_i sum_{t<T_i} discount^t [s_t = s] (and the state-action version).

    ``demos`` may also be a precomputed occupancy (S,) or (S, A). With ``infinite_horizon`` the demos
    may have any lengths (their truncated discounted visits are used as they are).
    """
    S, A = mdp.n_states, mdp.n_actions
    if isinstance(demos, np.ndarray):
        rho = np.asarray(demos, dtype=np.float64)
        if rho.shape not in ((S,), (S, A)):
            raise ValidationError(f"demos: occupancy of shape {rho.shape}; expected ({S},) or ({S}, {A})")
        if not np.all(np.isfinite(rho)) or (rho < 0).any() or rho.sum() <= 0:
            raise ValidationError("demos: occupancy must be finite, non-negative and not all zero")
        rho_sa = rho if rho.ndim == 2 else None
        return ExpertStats(rho if rho.ndim == 1 else rho.sum(axis=1), rho_sa, horizon, 0, None)
    trajs = check_demos(mdp, demos)
    H = None if infinite_horizon else resolve_demo_horizon(mdp, trajs, horizon)
    rho_sa = np.zeros((S, A))
    for traj in trajs:  # loop over demonstrations; each one's visits are added at once
        weights = mdp.discount ** np.arange(len(traj))
        np.add.at(rho_sa, (traj.obs[:-1], traj.acts), weights)
    rho_sa /= len(trajs)
    return ExpertStats(rho_sa.sum(axis=1), rho_sa, H, len(trajs), trajs)


def feature_matrix(mdp: TabularMDP, features: np.ndarray | None) -> np.ndarray:
    """Reward features: ``mdp.features`` (S, F) by default, or a given (S, F) / (S, A, F) array."""
    if features is None:
        return mdp.features
    phi = np.asarray(features, dtype=np.float64)
    S, A = mdp.n_states, mdp.n_actions
    if phi.ndim not in (2, 3) or phi.shape[0] != S or (phi.ndim == 3 and phi.shape[1] != A):
        raise ValidationError(f"features: shape {phi.shape}; expected ({S}, F) or ({S}, {A}, F)")
    if not np.all(np.isfinite(phi)):
        raise ValidationError("features: contains NaN or inf; expected finite values")
    return phi


def feature_expectations(phi: np.ndarray, rho: np.ndarray, rho_sa: np.ndarray | None) -> np.ndarray:
    """mu = sum_s rho(s) phi(s) for (S, F) features, or sum_{s,a} rho(s,a) phi(s,a) for (S, A, F)."""
    if phi.ndim == 2:
        return rho @ phi
    if rho_sa is None:
        raise ValidationError("state-action features need a state-action occupancy (S, A) or demonstrations")
    return np.einsum("sa,saf->f", rho_sa, phi)


def model_mdp(mdp: TabularMDP, stats: ExpertStats, initial: str, infinite_horizon: bool) -> TabularMDP:
    """The MDP the learner plans in: start states from the demos ("demos") or the MDP ("mdp")."""
    changes: dict = {}
    if infinite_horizon and mdp.horizon is not None:
        changes["horizon"] = None
    if initial == "demos" and stats.demos is not None:
        starts = np.bincount([int(t.obs[0]) for t in stats.demos], minlength=mdp.n_states).astype(np.float64)
        changes["initial"] = starts / starts.sum()
    return mdp.replace(**changes) if changes else mdp


def resolve_planning(mdp: TabularMDP, demos: Demos, horizon: int | None, infinite_horizon: bool,
                     initial: str) -> tuple[ExpertStats, TabularMDP, int | None]:
    """Expert statistics, the MDP to plan in and its horizon H (None = infinite-horizon discounted)."""
    stats = expert_statistics(mdp, demos, horizon, infinite_horizon=infinite_horizon)
    plan_mdp = model_mdp(mdp, stats, initial, infinite_horizon)
    if infinite_horizon:
        return stats, plan_mdp, None
    H = stats.horizon if stats.horizon is not None else (horizon or mdp.horizon)
    if H is None:
        raise ValidationError("horizon: unknown for an occupancy input; set Config.horizon or infinite_horizon=True")
    return stats, plan_mdp, H


def optimal_policy(mdp: TabularMDP, phi: np.ndarray, reward: np.ndarray,
                   horizon: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hard-optimal policy for ``reward`` ((S,) or (S, A)), its state-action occupancy (S, A) and mu (F,)."""
    _, _, pi = value_iteration(mdp, reward, horizon=horizon)
    rho_sa = occupancy_measure(mdp, pi, horizon=horizon, state_action=True)
    return pi, rho_sa, feature_expectations(phi, rho_sa.sum(axis=1), rho_sa)


def demo_log_likelihood(pi: np.ndarray, demos: Sequence[Trajectory]) -> float:
    """Mean over demonstrations of sum_t log pi_t(a_t | s_t); pi (S, A) or (H, S, A), obs = state ids."""
    pi = np.asarray(pi, dtype=np.float64)
    if len(demos) == 0:
        raise ValidationError("demos: empty; expected at least one Trajectory")
    total = 0.0
    with np.errstate(divide="ignore"):
        log_pi = np.log(pi)
    for traj in demos:
        states, actions = np.asarray(traj.obs[:-1], dtype=np.int64), np.asarray(traj.acts, dtype=np.int64)
        if pi.ndim == 3:
            if len(traj) > pi.shape[0]:
                raise ValidationError(f"demos: a trajectory of {len(traj)} steps; the policy covers {pi.shape[0]}")
            total += log_pi[np.arange(len(traj)), states, actions].sum()
        else:
            total += log_pi[states, actions].sum()
    return float(total / len(demos))
