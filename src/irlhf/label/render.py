"""Pictures for the labelling page: observations of classic-control envs drawn as frames, GIF clips, PNGs.

The classic-control envs can draw any state, so a segment stored as observations (no frames recorded)
can still be shown to a person: put each observation back into the env's internal state and call its
``rgb_array`` renderer. Frames are shrunk (Pillow, Lanczos) to keep the label store small.

    frames = render_observations("CartPole-v1", obs)            # (T, H, W, 3) uint8
    gif = segment_clip("Pendulum-v1", obs, acts, mask, fps=20)  # bytes, mime "image/gif"
    png = encode_png(frames[0])                                 # bytes, mime "image/png"

GIF frame delays are whole centiseconds: one step lasts ``gif_frame_seconds(fps)`` seconds in the clip
(0.05 s at fps=20), which is what a TAMER query's ``step_seconds`` should be. Pillow merges consecutive
identical frames into one longer frame, so a clip may decode to fewer frames than steps; its total
duration (steps * gif_frame_seconds(fps)) is always exact.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from irlhf.core.errors import ValidationError, describe

# grey that masked (after-the-end) steps are blended with, and the blend weight of the grey
MASK_GREY = 128
MASK_ALPHA = 0.5
MAX_FPS = 50  # browsers play GIF delays of 0-1 cs as 10 cs, so 2 cs (50 fps) is the fastest honest rate
MIN_WIDTH, MAX_WIDTH = 16, 2048


def _set_cartpole(env: Any, obs: np.ndarray, act: np.ndarray | None) -> None:
    """CartPole: the observation is the state (x, x_dot, theta, theta_dot)."""
    env.state = np.asarray(obs, dtype=np.float64)


def _set_mountain_car(env: Any, obs: np.ndarray, act: np.ndarray | None) -> None:
    """MountainCar(Continuous): the observation is the state (position, velocity)."""
    env.state = np.asarray(obs, dtype=np.float64)


def _set_acrobot(env: Any, obs: np.ndarray, act: np.ndarray | None) -> None:
    """Acrobot: obs (cos t1, sin t1, cos t2, sin t2, dt1, dt2) -> state (t1, t2, dt1, dt2)."""
    o = np.asarray(obs, dtype=np.float64)
    env.state = np.array([np.arctan2(o[1], o[0]), np.arctan2(o[3], o[2]), o[4], o[5]])


def _set_pendulum(env: Any, obs: np.ndarray, act: np.ndarray | None) -> None:
    """Pendulum: obs (cos th, sin th, thdot) -> state (th, thdot); the action sets ``last_u`` (torque arrow)."""
    o = np.asarray(obs, dtype=np.float64)
    env.state = np.array([np.arctan2(o[1], o[0]), o[2]])
    # the env clips the torque before storing it, so the arrow's size matches what was applied
    env.last_u = None if act is None else float(np.clip(np.ravel(act)[0], -env.max_torque, env.max_torque))


# env id -> function that writes one observation (and optionally its action) into env.unwrapped
_SETTERS: dict[str, Callable[[Any, np.ndarray, np.ndarray | None], None]] = {
    "CartPole-v1": _set_cartpole,
    "MountainCar-v0": _set_mountain_car,
    "MountainCarContinuous-v0": _set_mountain_car,
    "Acrobot-v1": _set_acrobot,
    "Pendulum-v1": _set_pendulum,
}
SUPPORTED_ENVS: tuple[str, ...] = tuple(_SETTERS)

# one rgb_array env per id, reused across calls: pygame surfaces and make() are the slow part
_ENVS: dict[str, gym.Env] = {}
# set-state-then-render must not interleave when a server renders from several threads
_LOCK = threading.Lock()


def _env(env_id: str) -> gym.Env:
    """The cached, reset ``rgb_array`` env for ``env_id`` (reset once: OrderEnforcing refuses render before it)."""
    if env_id not in _ENVS:
        env = gym.make(env_id, render_mode="rgb_array")
        env.reset(seed=0)
        _ENVS[env_id] = env
    return _ENVS[env_id]


def _check_env_id(env_id: object) -> str:
    if not isinstance(env_id, str) or env_id not in _SETTERS:
        raise ValidationError(
            f"env_id={describe(env_id)}: cannot draw this env from observations; supported: "
            f"{', '.join(SUPPORTED_ENVS)} (for any other env give frames instead)"
        )
    return env_id


def _check_width(width: object) -> int | None:
    if width is None:
        return None
    if not isinstance(width, (int, np.integer)) or isinstance(width, bool) or not MIN_WIDTH <= width <= MAX_WIDTH:
        raise ValidationError(f"width={width!r}: expected an int in [{MIN_WIDTH}, {MAX_WIDTH}] (pixels) or None")
    return int(width)


def _check_fps(fps: object) -> float:
    if (not isinstance(fps, (int, float, np.integer, np.floating)) or isinstance(fps, bool)
            or not np.isfinite(fps) or not 0 < fps <= MAX_FPS):
        raise ValidationError(f"fps={fps!r}: expected a number in (0, {MAX_FPS}] (frames per second)")
    return float(fps)


def _check_obs(env_id: str, env: gym.Env, obs: object) -> np.ndarray:
    """(T, *obs_shape) float64 finite observations, T >= 1."""
    shape = env.observation_space.shape
    try:
        arr = np.asarray(obs, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError(f"obs={describe(obs)}: expected a numeric array of shape "
                              f"(T, {', '.join(map(str, shape))}) for {env_id}") from None
    if arr.ndim != 1 + len(shape) or arr.shape[1:] != shape or arr.shape[0] < 1:
        raise ValidationError(f"obs: shape {arr.shape}; expected (T, {', '.join(map(str, shape))}) with T >= 1 "
                              f"for {env_id} (observation space {env.observation_space})")
    bad = ~np.isfinite(arr)
    if bad.any():
        t = int(np.argwhere(bad)[0][0])
        raise ValidationError(f"obs[{t}]={describe(arr[t])}: non-finite (NaN or inf) entries; expected finite "
                              f"observations of {env_id}")
    return arr


def _check_acts(env_id: str, env: gym.Env, acts: object, n: int) -> np.ndarray | None:
    """(T, *act_shape) actions or None; only their count and finiteness matter for drawing."""
    if acts is None:
        return None
    try:
        arr = np.asarray(acts, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError(f"acts={describe(acts)}: expected a numeric array with one action per "
                              f"observation") from None
    shape = env.action_space.shape or ()
    ok_shapes = {(n, *shape)} | ({(n,)} if shape == (1,) else set())  # Pendulum's (T,) is accepted as (T, 1)
    if arr.shape not in ok_shapes:
        raise ValidationError(f"acts: shape {arr.shape}; expected {(n, *shape)} (one action per observation) "
                              f"for {env_id} (action space {env.action_space})")
    if not np.isfinite(arr).all():
        raise ValidationError(f"acts={describe(arr)}: non-finite (NaN or inf) entries; expected finite actions")
    return arr


def _image() -> Any:
    """Pillow's ``Image`` module."""
    from PIL import Image  # optional (the `label` extra): only drawing and encoding frames needs it

    return Image


def _resize(frame: np.ndarray, width: int | None) -> np.ndarray:
    """(H, W, 3) uint8 -> (round(H * width / W), width, 3) uint8; unchanged when width is None or W.

    Shrinking averages boxes of pixels (4x faster than Lanczos here, and as sharp at these 2-3x factors);
    enlarging uses Lanczos."""
    h, w = frame.shape[:2]
    if width is None or width == w:
        return frame
    Image = _image()
    height = max(1, round(h * width / w))
    resample = Image.Resampling.BOX if width < w else Image.Resampling.LANCZOS
    return np.asarray(Image.fromarray(frame).resize((width, height), resample))


def render_observations(env_id: str, obs: np.ndarray, acts: np.ndarray | None = None, *,
                        width: int | None = 240) -> np.ndarray:
    """Draw each observation as the env's ``rgb_array`` frame.

    obs: (T, *obs_shape) observations of ``env_id`` (one of ``SUPPORTED_ENVS``). acts: optional (T, *act_shape)
    actions, ``acts[t]`` taken at ``obs[t]``; only Pendulum draws them (the torque arrow on frame t).
    width: output width in pixels (height keeps the aspect ratio), None for the env's native size.
    Returns (T, H, W, 3) uint8. Raises ValidationError on an unsupported env, a wrong shape or NaN/inf.
    """
    env_id = _check_env_id(env_id)
    width = _check_width(width)
    with _LOCK:
        env = _env(env_id)
        arr = _check_obs(env_id, env, obs)
        act_arr = _check_acts(env_id, env, acts, len(arr))
        inner, setter = env.unwrapped, _SETTERS[env_id]
        raw = []
        for t in range(len(arr)):
            setter(inner, arr[t], None if act_arr is None else act_arr[t])
            raw.append(np.array(inner.render(), dtype=np.uint8))  # a copy: the next render reuses the surface
    return np.stack([_resize(frame, width) for frame in raw])


def _check_frames(frames: object, name: str = "frames") -> np.ndarray:
    arr = np.asarray(frames)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3 or 0 in arr.shape:
        raise ValidationError(f"{name}: shape {arr.shape} and dtype {arr.dtype}; expected (T, H, W, 3) uint8 RGB "
                              f"with T, H, W >= 1")
    return arr


def gif_frame_seconds(fps: float = 20) -> float:
    """Seconds one frame lasts in a GIF written by ``encode_gif(..., fps=fps)`` (whole centiseconds, >= 0.02)."""
    return _gif_centiseconds(_check_fps(fps)) / 100


def _gif_centiseconds(fps: float) -> int:
    return max(2, round(100 / fps))


def encode_gif(frames: np.ndarray, *, fps: float = 20) -> bytes:
    """Animated GIF (loops forever) of frames (T, H, W, 3) uint8, T >= 1; each frame lasts gif_frame_seconds(fps)."""
    arr = _check_frames(frames)
    fps = _check_fps(fps)
    Image = _image()
    images = [Image.fromarray(f) for f in arr]
    buf = io.BytesIO()
    # duration in ms, a multiple of 10: Pillow truncates to centiseconds, which would make the clip run fast
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=_gif_centiseconds(fps) * 10,
                   loop=0, disposal=1)
    return buf.getvalue()


def encode_png(frame: np.ndarray) -> bytes:
    """PNG of one frame (H, W, 3) uint8."""
    arr = np.asarray(frame)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[-1] != 3 or 0 in arr.shape:
        raise ValidationError(f"frame: shape {arr.shape} and dtype {arr.dtype}; expected (H, W, 3) uint8 RGB")
    buf = io.BytesIO()
    _image().fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def grey_out(frames: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Frames (T, H, W, 3) uint8 with the steps where mask (T,) bool is False blended 50% with grey."""
    arr = _check_frames(frames)
    m = _check_mask(mask, len(arr))
    out = arr.copy()
    # blend toward a mid grey: keeps the scene readable but clearly 'not live'
    out[~m] = ((1 - MASK_ALPHA) * arr[~m] + MASK_ALPHA * MASK_GREY).round().astype(np.uint8)
    return out


def _check_mask(mask: object, n: int) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.shape != (n,) or not (arr.dtype == bool or np.isin(arr, (0, 1)).all()):
        raise ValidationError(f"mask={describe(mask)}: expected a bool array of shape ({n},) (one per step; "
                              f"False = after the episode ended)")
    return arr.astype(bool)


def segment_clip(env_id: str, obs: np.ndarray, acts: np.ndarray | None = None, mask: np.ndarray | None = None, *,
                 fps: float = 20, width: int | None = 240) -> bytes:
    """Animated GIF of one segment: obs (L, *obs_shape), acts (L, *act_shape) or None, mask (L,) bool or None.

    Steps where mask is False (after the episode ended) are blended 50% with grey, so the person sees the end.
    Step k is shown during [k, k+1) * gif_frame_seconds(fps) seconds from the clip's start.
    """
    _check_fps(fps)  # fail before the (slower) rendering
    frames = render_observations(env_id, obs, acts, width=width)
    if mask is not None:
        frames = grey_out(frames, mask)
    return encode_gif(frames, fps=fps)
