"""Gymnasium spaces as the learners see them: supported spaces, widths, batches, random actions, JSON.

Every sample-based learner accepts a ``Box`` or ``Discrete`` observation space and a ``Discrete`` or ``Box``
action space. A network sees a Discrete value as a one-hot vector of width n and a Box value flattened to
prod(shape) numbers (:func:`flat_dim`); the torch encoder that does this is ``irlhf.nn.encoders``.

    obs_space, act_space = resolve_spaces("CartPole-v1")     # an id, a gymnasium.Env or a pair of spaces
    batch, single = as_batch(obs, obs_space, "obs")          # one observation or (N, *shape) -> (N, *shape)
    action = random_action(act_space, rng)                   # uniform, from a numpy Generator (seeded)
    space_from_dict(space_to_dict(space)) == space           # JSON-ready descriptions (saved model files)
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from irlhf.core.errors import ValidationError, describe

__all__ = ["act_dim", "as_batch", "check_spaces", "episode_limit", "flat_dim", "obs_dim", "one_hot", "random_action",
           "resolve_spaces", "space_from_dict", "space_to_dict"]


def check_spaces(observation_space: Any, action_space: Any) -> None:
    """Raise ``ValidationError`` unless the observation space is Box/Discrete and the action space Discrete/Box."""
    if not isinstance(observation_space, (spaces.Box, spaces.Discrete)):
        raise ValidationError(f"observation_space={observation_space!r}: expected a gymnasium Box or Discrete space")
    if not isinstance(action_space, (spaces.Box, spaces.Discrete)):
        raise ValidationError(f"action_space={action_space!r}: expected a gymnasium Discrete or Box space")
    if isinstance(observation_space, spaces.Box) and int(np.prod(observation_space.shape)) < 1:
        raise ValidationError(f"observation_space={observation_space!r}: expected at least one dimension")
    if isinstance(action_space, spaces.Box) and int(np.prod(action_space.shape)) < 1:
        raise ValidationError(f"action_space={action_space!r}: expected at least one dimension")


def resolve_spaces(env: Any) -> tuple[spaces.Space, spaces.Space]:
    """(observation_space, action_space) from a gymnasium env id, a gymnasium.Env, or a pair of spaces."""
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



def episode_limit(env: Any) -> int | None:
    """The time limit (``max_episode_steps``) of a gymnasium env id or env; None without one (or for spaces)."""
    spec = gymnasium.spec(env) if isinstance(env, str) else getattr(env, "spec", None)
    return None if spec is None or spec.max_episode_steps is None else int(spec.max_episode_steps)


def flat_dim(space: spaces.Space) -> int:
    """Width of a value of ``space`` as a network sees it: n for Discrete (one-hot), prod(shape) for Box."""
    return int(space.n) if isinstance(space, spaces.Discrete) else int(np.prod(space.shape))


obs_dim = flat_dim  # the network input width of an observation space
act_dim = flat_dim  # logits of a Discrete action space, dimensions of a Box one


def one_hot(values: Any, space: spaces.Discrete) -> np.ndarray:
    """(N,) values of a Discrete space (start..start+n-1) -> (N, n) float64 one-hot rows."""
    idx = np.asarray(values).reshape(-1).astype(np.int64) - int(space.start)
    out = np.zeros((len(idx), int(space.n)))
    out[np.arange(len(idx)), idx] = 1.0
    return out


def as_batch(x: Any, space: spaces.Space, name: str = "obs") -> tuple[np.ndarray, bool]:
    """``(batch (N, *shape), single)``: one value shaped like ``space`` becomes a batch of one (single True);
    an (N, *shape) batch is returned as is. Anything else raises ``ValidationError`` naming ``name``."""
    x = np.asarray(x)
    shape = tuple(space.shape)
    single = x.shape == shape
    batch = x[None] if single else x
    if batch.ndim != len(shape) + 1 or tuple(batch.shape[1:]) != shape:
        raise ValidationError(f"{name}: shape {x.shape}; expected {shape} or (N, *{shape})")
    return batch, single


def random_action(space: spaces.Space, rng: np.random.Generator) -> Any:
    """A uniform action from ``rng`` (not ``space.sample()``, whose RNG is not ours to seed): an int64 for
    Discrete, an array of the space's dtype for a (bounded) Box."""
    if isinstance(space, spaces.Discrete):
        return np.int64(rng.integers(space.start, space.start + space.n))
    return rng.uniform(space.low, space.high).astype(space.dtype)


# -- JSON descriptions ---------------------------------------------------------------------------------
def space_to_dict(space: spaces.Space) -> dict[str, Any]:
    """A JSON-ready description of a Box or Discrete space (infinite bounds as the strings "inf" / "-inf")."""
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.Box):
        def enc(v: np.ndarray) -> list:
            return [x if np.isfinite(x) else str(x) for x in np.asarray(v, dtype=np.float64).reshape(-1).tolist()]
        return {"type": "Box", "shape": list(space.shape), "low": enc(space.low), "high": enc(space.high),
                "dtype": str(space.dtype)}
    raise ValidationError(f"space={space!r}: expected a Box or Discrete space")


def space_from_dict(d: dict[str, Any]) -> spaces.Space:
    """The space described by :func:`space_to_dict`."""
    if d.get("type") == "Discrete":
        return spaces.Discrete(int(d["n"]), start=int(d["start"]))
    if d.get("type") == "Box":
        shape = tuple(int(s) for s in d["shape"])
        dtype = np.dtype(d["dtype"])
        low = np.array([float(x) for x in d["low"]]).reshape(shape).astype(dtype)
        high = np.array([float(x) for x in d["high"]]).reshape(shape).astype(dtype)
        return spaces.Box(low=low, high=high, shape=shape, dtype=dtype)
    raise ValidationError(f"space description {d!r}: expected type Box or Discrete")
