"""irlhf.label.render: frames from observations equal the env's own frames; GIF/PNG encoding; greyed masks."""

from __future__ import annotations

import io

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("pygame")  # classic-control rendering needs it (the `label` extra)
from PIL import Image  # noqa: E402

from irlhf.core.errors import ValidationError  # noqa: E402
from irlhf.label.render import (  # noqa: E402
    encode_gif,
    encode_png,
    gif_frame_seconds,
    grey_out,
    render_observations,
    segment_clip,
)


def _rollout(env_id: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """n steps of random actions: obs (n, *obs_shape) after each step, acts (n, *act_shape), env frames."""
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=seed)
    env.action_space.seed(seed)
    obs, acts, frames = [], [], []
    for _ in range(n):
        a = env.action_space.sample()
        o, _, terminated, _, _ = env.step(a)
        obs.append(o), acts.append(a), frames.append(env.render())
        if terminated:
            break
    env.close()
    return np.array(obs), np.array(acts), frames


def _decode(gif: bytes) -> tuple[list[np.ndarray], Image.Image]:
    im = Image.open(io.BytesIO(gif))
    frames = []
    for k in range(im.n_frames):
        im.seek(k)
        frames.append(np.asarray(im.convert("RGB")))
    return frames, im


def test_cartpole_frames_equal_the_envs_own_frames() -> None:
    obs, _, frames = _rollout("CartPole-v1", 12, seed=3)
    drawn = render_observations("CartPole-v1", obs, width=None)
    assert drawn.shape == (len(obs), 400, 600, 3) and drawn.dtype == np.uint8
    for t in range(len(obs)):
        np.testing.assert_array_equal(drawn[t], frames[t])


def test_pendulum_frames_with_torque_equal_the_envs_own_frames() -> None:
    # the env draws the state after step(u) with the arrow of u: so frame of obs[t] with acts[t] = that u
    obs, acts, frames = _rollout("Pendulum-v1", 10, seed=0)
    drawn = render_observations("Pendulum-v1", obs, acts, width=None)
    for t in range(len(obs)):
        np.testing.assert_array_equal(drawn[t], frames[t])  # theta via atan2 of float32 (cos, sin) suffices
    no_arrow = render_observations("Pendulum-v1", obs[:1], width=None)[0]
    assert (no_arrow != drawn[0]).any()  # the torque arrow is drawn only when actions are given


@pytest.mark.parametrize("env_id", ["Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0"])
def test_other_envs_render_resized_frames(env_id: str) -> None:
    obs, _, frames = _rollout(env_id, 3, seed=1)
    native = render_observations(env_id, obs, width=None)
    diff = np.abs(native.astype(int) - np.array(frames, dtype=int)).max(axis=-1)
    assert (diff > 0).mean() < 1e-3
    small = render_observations(env_id, obs, width=120)
    h, w = frames[0].shape[:2]
    assert small.shape == (len(obs), round(h * 120 / w), 120, 3) and small.dtype == np.uint8


def test_gif_decodes_to_every_frame_loops_forever_and_keeps_time() -> None:
    obs, _, _ = _rollout("CartPole-v1", 8, seed=5)
    frames = render_observations("CartPole-v1", obs, width=240)
    gif = encode_gif(frames, fps=20)
    im = Image.open(io.BytesIO(gif))
    assert im.info["loop"] == 0 and gif_frame_seconds(20) == 0.05
    distinct = 1 + int((np.diff(frames.astype(int), axis=0) != 0).any(axis=(1, 2, 3)).sum())
    assert im.n_frames == distinct and im.size == (240, 160)  # repeats are merged (see the next test)
    start = 0
    for k in range(im.n_frames):  # each decoded frame is the step shown at its start time, losslessly
        im.seek(k)
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), frames[start])
        start += im.info["duration"] // 50
    assert start == len(obs)
    one, _ = _decode(encode_gif(frames[:1]))
    assert len(one) == 1
    png = Image.open(io.BytesIO(encode_png(frames[0])))
    np.testing.assert_array_equal(np.asarray(png.convert("RGB")), frames[0])


def test_gif_merges_repeated_frames_but_keeps_each_steps_time() -> None:
    # Pillow writes a run of identical frames as one longer frame: step k still shows at k * step_seconds
    frames = np.zeros((5, 8, 8, 3), dtype=np.uint8)
    frames[2:, 0, 0] = 255
    im = Image.open(io.BytesIO(encode_gif(frames, fps=30)))
    durations = []
    for k in range(im.n_frames):
        im.seek(k)
        durations.append(im.info["duration"])
    assert gif_frame_seconds(30) == 0.03 and durations == [60, 90]


def test_masked_steps_are_greyed() -> None:
    obs, acts, _ = _rollout("CartPole-v1", 4, seed=7)
    mask = np.array([True, True, False, False][: len(obs)])
    frames = render_observations("CartPole-v1", obs, width=64)
    greyed = grey_out(frames, mask)
    np.testing.assert_array_equal(greyed[mask], frames[mask])
    expected = np.round(0.5 * frames[~mask] + 64).astype(np.uint8)
    np.testing.assert_array_equal(greyed[~mask], expected)
    decoded, _ = _decode(segment_clip("CartPole-v1", obs, acts, mask, width=64))
    np.testing.assert_array_equal(decoded[-1], greyed[-1])
    assert decoded[-1].max() < 200  # no white left on a greyed frame


def test_bad_inputs_are_rejected_with_clear_errors() -> None:
    with pytest.raises(ValidationError, match="LunarLander-v3.*CartPole-v1.*give frames instead"):
        render_observations("LunarLander-v3", np.zeros((2, 8)))
    with pytest.raises(ValidationError, match=r"shape \(2, 3\).*\(T, 4\)"):
        render_observations("CartPole-v1", np.zeros((2, 3)))
    with pytest.raises(ValidationError, match=r"obs\[1\].*NaN"):
        render_observations("CartPole-v1", np.array([[0, 0, 0, 0], [0, np.nan, 0, 0]]))
    with pytest.raises(ValidationError, match="acts"):
        render_observations("Pendulum-v1", np.zeros((2, 3)), np.zeros((3, 1)))
    with pytest.raises(ValidationError, match="width"):
        render_observations("CartPole-v1", np.zeros((1, 4)), width=0)
    with pytest.raises(ValidationError, match="uint8"):
        encode_gif(np.zeros((2, 8, 8, 3)))
    with pytest.raises(ValidationError, match=r"\(T, H, W, 3\)"):
        encode_gif(np.zeros((8, 8, 3), dtype=np.uint8))
    with pytest.raises(ValidationError, match="fps"):
        encode_gif(np.zeros((1, 8, 8, 3), dtype=np.uint8), fps=0)
    with pytest.raises(ValidationError, match=r"\(H, W, 3\)"):
        encode_png(np.zeros((1, 8, 8, 3), dtype=np.uint8))
    with pytest.raises(ValidationError, match="mask"):
        segment_clip("CartPole-v1", np.zeros((2, 4)), mask=np.array([True]))
