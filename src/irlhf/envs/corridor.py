"""A one-lane corridor (lane-keeping) world for imitation-learning experiments.

States are lateral offsets ``-half_width .. half_width`` stored as ``s = offset + half_width``, so the
lane centre is ``s = half_width``. Actions: 0 steer left (offset - 1), 1 keep straight, 2 steer right
(offset + 1); offsets are clipped at the walls. Dynamics are deterministic, the episode starts on the
centre line, and the true reward is 0 on the centre line and -|offset| off it, so the optimal (expert)
policy keeps straight on the lane and steers back towards the centre from anywhere else.
"""

from __future__ import annotations

import numpy as np

from irlhf.core.errors import ValidationError
from irlhf.envs.tabular import TabularMDP

LEFT, STRAIGHT, RIGHT = 0, 1, 2


def corridor(half_width: int = 3, discount: float = 0.99, horizon: int | None = None) -> TabularMDP:
    """Build the corridor MDP with ``2 * half_width + 1`` states and 3 actions (see module docstring)."""
    if isinstance(half_width, bool) or not isinstance(half_width, (int, np.integer)) or half_width < 1:
        raise ValidationError(f"half_width={half_width!r}: expected an int >= 1")
    half_width = int(half_width)
    S, A = 2 * half_width + 1, 3
    P = np.zeros((S, A, S))
    for s in range(S):
        for a, step in ((LEFT, -1), (STRAIGHT, 0), (RIGHT, 1)):
            P[s, a, min(max(s + step, 0), S - 1)] = 1.0
    initial = np.zeros(S)
    initial[half_width] = 1.0
    offsets = np.arange(S) - half_width
    return TabularMDP(
        transitions=P,
        features=np.eye(S),
        initial=initial,
        discount=discount,
        horizon=horizon,
        true_reward=-np.abs(offsets).astype(np.float64),
        meta={"world": "corridor", "half_width": half_width, "centre": half_width},
    )


def corridor_expert(mdp: TabularMDP) -> np.ndarray:
    """The deterministic expert (S, 3): straight on the centre line, steer back towards it elsewhere."""
    c = int(mdp.meta["centre"])
    pi = np.zeros((mdp.n_states, 3))
    for s in range(mdp.n_states):
        pi[s, STRAIGHT if s == c else (LEFT if s > c else RIGHT)] = 1.0
    return pi
