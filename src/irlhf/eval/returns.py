"""Returns of a learned policy next to an expert's and a uniformly random policy's, on a gymnasium env.

The normalised score (learned - random) / (expert - random) puts 1 at the expert and 0 at random behaviour
(as in the D4RL convention, Fu et al. 2020). Every return is undiscounted, of the policy's deterministic
actions, averaged over ``n_episodes`` episodes reset with seeds ``seed, seed + 1, ...``. Not re-exported by
``irlhf.eval`` (it imports gymnasium).
"""

from __future__ import annotations

from typing import Any

from irlhf.envs.gym import Policy, evaluate, normalized_score, random_return


def score_policy(env_id: str, policy: Policy, expert: Policy | None, n_episodes: int, seed: int,
                 expert_return: float | None = None) -> dict[str, Any]:
    """``eval_return_mean`` / ``eval_return_std`` of ``policy``, ``expert_return_mean`` (the expert's, else the
    given ``expert_return``, e.g. the demonstrations' mean; None without either), ``random_return_mean``,
    ``normalized_score`` (None without an expert return or when it equals the random one), ``eval_episodes``."""
    mean, std = evaluate(env_id, policy, n_episodes=n_episodes, seed=seed)
    expert_mean = evaluate(env_id, expert, n_episodes=n_episodes, seed=seed)[0] if expert is not None else expert_return
    random_mean = random_return(env_id, n_episodes=n_episodes, seed=seed)
    score = None
    if expert_mean is not None and expert_mean != random_mean:
        score = normalized_score(env_id, mean, float(expert_mean), random_mean)
    return {"eval_return_mean": mean, "eval_return_std": std, "expert_return_mean": expert_mean,
            "random_return_mean": random_mean, "normalized_score": score, "eval_episodes": n_episodes}
