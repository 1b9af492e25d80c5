"""GAIL and AIRL: losses on hand-computed batches, AIRL's optimum on a tabular MDP, short seeded runs, bad input."""

import math
import types

import numpy as np
import pytest
import torch
from gymnasium import spaces

from irlhf.core.errors import ValidationError
from irlhf.envs.gym import evaluate, random_return
from irlhf.envs.tabular import random_mdp
from irlhf.irl import adversarial, airl, gail
from irlhf.planning import soft_value_iteration

torch.set_num_threads(1)


def _sp(x: float) -> float:
    return math.log1p(math.exp(x))


def test_discriminator_loss_on_a_hand_computed_batch():
    le, lp = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0, 1.0])
    loss, parts = adversarial.discriminator_loss(le, lp, entropy_bonus=0.1)
    logistic = (_sp(-2.0) + _sp(1.0)) / 2 + (_sp(0.5) + _sp(-3.0) + _sp(1.0)) / 3
    p = [1 / (1 + math.exp(-x)) for x in (2.0, -1.0, 0.5, -3.0, 1.0)]
    entropy = np.mean([-(q * math.log(q) + (1 - q) * math.log(1 - q)) for q in p])
    assert loss.item() == pytest.approx(logistic - 0.1 * entropy, abs=1e-6)
    assert parts["disc_loss"].item() == pytest.approx(logistic, abs=1e-6)
    assert parts["disc_entropy"].item() == pytest.approx(entropy, abs=1e-6)
    assert parts["acc_expert"].item() == 0.5 and parts["acc_policy"].item() == pytest.approx(1 / 3)
    assert parts["expert_score"].item() == pytest.approx((p[0] + p[1]) / 2, abs=1e-6)


def test_label_smoothing_targets_and_its_bounded_optimum():
    le, lp = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0, 1.0])
    eps = 0.2
    loss, parts = adversarial.discriminator_loss(le, lp, label_smoothing=eps)
    expert = np.mean([(1 - eps) * _sp(-x) + eps * _sp(x) for x in (2.0, -1.0)])
    policy = np.mean([(1 - eps) * _sp(x) + eps * _sp(-x) for x in (0.5, -3.0, 1.0)])
    assert loss.item() == pytest.approx(expert + policy, abs=1e-6) == parts["disc_loss"].item()
    # the loss of one policy logit is smallest at log(eps / (1 - eps)): the reward cannot run off to -infinity
    grid = torch.linspace(-6, 6, 1201)
    per_logit = [adversarial.discriminator_loss(torch.zeros(1), g.reshape(1), label_smoothing=eps)[0] for g in grid]
    assert grid[int(torch.stack(per_logit).argmin())].item() == pytest.approx(math.log(eps / (1 - eps)), abs=0.01)
    with pytest.raises(ValidationError, match="label_smoothing"):
        airl.Config(label_smoothing=0.5)


def test_gail_reward_types_from_the_logit():
    logit = torch.tensor([-2.0, 0.0, 3.0])
    d = torch.sigmoid(logit)
    torch.testing.assert_close(gail.reward_from_logit(logit, "-log(1-D)"), -torch.log(1 - d))
    torch.testing.assert_close(gail.reward_from_logit(logit, "log(D)"), torch.log(d))
    torch.testing.assert_close(gail.reward_from_logit(logit, "logit"), torch.log(d) - torch.log(1 - d))
    with pytest.raises(ValidationError, match="reward_type"):
        gail.Config(reward_type="log D")


def test_gradient_penalty_of_a_linear_discriminator():
    """A linear logit has the same input gradient everywhere: the penalty is (||w|| - 1)^2 exactly."""
    features = adversarial.Features(spaces.Box(-1, 1, (3,)), spaces.Box(-1, 1, (2,)))
    disc = gail.GailDiscriminator(features, (), "relu", "logit", seed=0)
    w = disc.net[0].weight.detach().reshape(-1)
    x = tuple(torch.randn(4, k) for k in (3, 2, 3))
    y = tuple(torch.randn(4, k) for k in (3, 2, 3))
    gp = adversarial.gradient_penalty(disc, x, y, torch.zeros(4), torch.Generator().manual_seed(0))
    assert gp.item() == pytest.approx((w.norm().item() - 1) ** 2, rel=1e-5)


def test_absorbing_inputs():
    features = adversarial.Features(spaces.Box(-5, 5, (2,)), spaces.Discrete(3), absorbing=True)
    obs = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, -1.0]])
    x = (features.obs(obs), features.acts([0, 2, 1]), features.obs(obs[::-1].copy()))
    assert x[0].shape == (3, 3) and torch.all(x[0][:, -1] == 0)
    (o, a, n), d, lp = adversarial.absorbing_inputs(features, x, torch.tensor([0.0, 1.0, 0.0]),
                                                    torch.tensor([-0.1, -0.2, -0.3]))
    assert o.shape == (4, 3) and torch.all(d == 0)
    torch.testing.assert_close(n[1], torch.tensor([0.0, 0.0, 1.0]))  # the terminal step's s' is s_a
    torch.testing.assert_close(n[0], x[2][0])
    torch.testing.assert_close(o[3], torch.tensor([0.0, 0.0, 1.0]))  # the appended s_a -> s_a row
    torch.testing.assert_close(a[3], torch.zeros(3))
    torch.testing.assert_close(lp, torch.tensor([-0.1, -0.2, -0.3, 0.0]))


def test_airl_discriminator_optimum_recovers_the_soft_advantage():
    """Tabular AIRL (one-hot inputs, linear g(s, a) and h(s)): minimising the exact expected logistic loss of
    expert transitions d(s) pi_E(a|s) P(s'|s,a) against uniform-policy ones d(s) pi(a|s) P(s'|s,a) gives
    D* = pi_E / (pi_E + pi), so f* = log pi_E(a|s) = Q_soft(s, a) - V_soft(s), the soft advantage."""
    mdp = random_mdp(n_states=6, n_actions=3, branching=2, discount=0.9, seed=3)
    rng = np.random.default_rng(0)
    reward = rng.normal(size=mdp.n_states)
    _, _, pi_e = soft_value_iteration(mdp, reward)
    S, A = mdp.n_states, mdp.n_actions
    P = mdp.transitions.toarray().reshape(S, A, S)  # row s * A + a = P(. | s, a)
    s, a, s2 = np.meshgrid(np.arange(S), np.arange(A), np.arange(S), indexing="ij")
    s, a, s2 = s.ravel(), a.ravel(), s2.ravel()
    d = np.full(S, 1.0 / S)
    pi = np.full((S, A), 1.0 / A)
    w_e = torch.as_tensor(d[s] * pi_e[s, a] * P[s, a, s2], dtype=torch.float32)
    w_p = torch.as_tensor(d[s] * pi[s, a] * P[s, a, s2], dtype=torch.float32)
    features = adversarial.Features(spaces.Discrete(S), spaces.Discrete(A))
    # one-hot inputs are concatenated, so g needs a hidden layer to be any function of (s, a)
    disc = airl.AirlDiscriminator(features, (64,), "tanh", gamma=mdp.discount, state_only=False, seed=0)
    x = (features.obs(s), features.acts(a), features.obs(s2))
    log_pi = torch.as_tensor(np.log(pi[s, a]), dtype=torch.float32)
    opt = torch.optim.LBFGS(disc.parameters(), lr=1, max_iter=500, tolerance_grad=1e-9, tolerance_change=1e-12,
                            history_size=50, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        logit = disc.logit(x, torch.zeros(len(s)), log_pi)
        loss = (w_e * torch.nn.functional.softplus(-logit)).sum() + (w_p * torch.nn.functional.softplus(logit)).sum()
        loss.backward()
        return loss

    for _ in range(5):
        opt.step(closure)
    with torch.no_grad():
        f = disc.f(x, torch.zeros(len(s))).numpy()
    reached = P[s, a, s2] > 0
    np.testing.assert_allclose(f[reached], np.log(pi_e[s, a])[reached], atol=1e-2)


@pytest.mark.usefixtures("torch_warns_every_time")  # read-only demo arrays must not warn
def test_gail_loop_records_and_reward_forms(cartpole_demos):
    """The fast default-suite check of GAIL's loop (the learning check below is ``slow``)."""
    records = []
    config = gail.Config(total_timesteps=768, disc_updates=4, seed=0, bc_warm_start=False)  # a policy that falls
    result = gail.train("CartPole-v1", cartpole_demos, config, callback=lambda rec, policy: records.append(rec))
    assert records == result.history and len(records) == 3  # one record per 256-step PPO rollout
    assert {"disc_loss", "acc_expert", "acc_policy", "expert_score", "policy_score", "mean_return",
            "mean_length", "grad_penalty", "disc_entropy", "seconds", "reward_step",
            "reward_terminal"} <= set(records[-1])
    assert records[-1]["reward_step"] > 0  # -log(1 - D) > 0; a short random-ish policy falls: terminal rows exist
    assert records[-1]["reward_terminal"] is not None
    demo = cartpole_demos[0]
    r = result.reward(demo.obs[:-1], demo.acts, demo.obs[1:])
    assert r.shape == (len(demo.acts),) and r.dtype == np.float64 and np.all(r > 0)  # -log(1 - D) > 0
    assert result.reward(demo.obs[0], demo.acts[0], demo.obs[1]) == pytest.approx(r[0], rel=1e-5)
    assert result.policy(demo.obs[:3]).shape == (3,)


@pytest.mark.slow  # ~5 s; test_gail_loop_records_and_reward_forms covers the loop, records and reward forms
def test_gail_short_cartpole_run_beats_random(cartpole_demos):
    records = []
    result = gail.train("CartPole-v1", cartpole_demos, gail.Config(total_timesteps=12_000, seed=0),
                        callback=lambda rec, policy: records.append(rec))
    assert records == result.history and len(records) == math.ceil(12_000 / 256)  # whole PPO rollouts
    assert {"disc_loss", "acc_expert", "acc_policy", "expert_score", "policy_score", "mean_return",
            "mean_length"} <= set(records[-1])
    assert records[-1]["expert_score"] > records[-1]["policy_score"]
    ret = evaluate("CartPole-v1", result.policy, n_episodes=5, seed=1)[0]
    assert ret > 3 * random_return("CartPole-v1", n_episodes=20, seed=0)  # random ~22
    r = result.reward(cartpole_demos[0].obs[:-1], cartpole_demos[0].acts, cartpole_demos[0].obs[1:])
    assert r.shape == (len(cartpole_demos[0].acts),) and np.all(r > 0)  # -log(1 - D) > 0
    assert isinstance(result.reward(cartpole_demos[0].obs[0], 1, cartpole_demos[0].obs[1]), float)


@pytest.mark.usefixtures("torch_warns_every_time")  # read-only demo arrays must not warn
def test_callback_stops_and_airl_reward_is_g(cartpole_demos):
    result = airl.train("CartPole-v1", cartpole_demos, airl.Config(total_timesteps=20_000, seed=0),
                        callback=lambda rec, policy: rec["round"] >= 3)
    assert len(result.history) == 3 and result.model.num_timesteps <= 4 * 256
    demo = cartpole_demos[0]
    g = result.reward(demo.obs[:-1], demo.acts, demo.obs[1:])
    disc, features = result.discriminator, result.features
    with torch.no_grad():
        h = disc.h(features.obs(demo.obs))[:, 0].numpy()
    f = airl.shaped_reward(result, demo.obs[:-1], demo.acts, demo.obs[1:])
    np.testing.assert_allclose(f, g + disc.gamma * h[1:] - h[:-1], rtol=1e-5, atol=1e-5)
    assert disc.gamma == pytest.approx(0.98)  # CartPole's PPO discount (rl-zoo)


def test_bad_input(gym_demos, cartpole_demos):
    pend = gym_demos("Pendulum-v1", 1, 0)
    with pytest.raises(ValidationError, match="demos.obs: shape"):
        gail.train("CartPole-v1", pend, gail.Config(total_timesteps=256))
    obs = np.zeros((2, 4))
    obs[1, 2] = np.nan
    bad = types.SimpleNamespace(obs=obs, acts=np.zeros(2, dtype=np.int64), next_obs=np.zeros((2, 4)), dones=np.zeros(2))
    with pytest.raises(ValidationError, match="non-finite value in transition 1"):
        gail.train("CartPole-v1", bad, gail.Config(total_timesteps=256))
    with pytest.raises(ValidationError, match="empty"):
        airl.train("CartPole-v1", [], airl.Config(total_timesteps=256))
    with pytest.raises(ValidationError, match="sac"):
        gail.train("CartPole-v1", cartpole_demos, gail.Config(algo="sac", total_timesteps=256))
    with pytest.raises(ValidationError, match="gymnasium environment id"):
        gail.train(None, cartpole_demos)
    with pytest.raises(ValidationError, match="expected irlhf.irl.gail.Config"):
        gail.train("CartPole-v1", cartpole_demos, airl.Config())
    with pytest.raises(ValidationError, match="normalize_reward"):
        airl.Config(algo="sac", normalize_reward=True)
    with pytest.raises(ValidationError, match="bc_warm_start"):
        gail.Config(algo="sac", bc_warm_start=True)
    # GAIL's PPO generator starts from BC by default, SAC's and AIRL's do not
    assert gail.Config().bc_warm_start and not gail.Config(algo="sac").bc_warm_start
    assert not airl.Config().bc_warm_start
    with pytest.raises(ValidationError, match="algo"):
        gail.Config(algo="dqn")
    with pytest.raises(ValidationError, match="gamma"):
        airl.Config(gamma=1.5)
    with pytest.raises(ValidationError, match="demo_batch_size"):
        gail.Config(demo_batch_size=0)


@pytest.mark.slow
def test_airl_cartpole_run_beats_random(cartpole_demos):
    """30k steps (about a minute): measured deterministic return 417 on seed 0 (random ~22)."""
    result = airl.train("CartPole-v1", cartpole_demos, airl.Config(total_timesteps=30_000, seed=0))
    assert evaluate("CartPole-v1", result.policy, n_episodes=10, seed=5)[0] > 5 * random_return("CartPole-v1")
