import math
import types

import numpy as np
import pytest
import torch
from gymnasium import spaces

from irlhf.core.errors import ValidationError
from irlhf.data.types import Trajectory, Transitions, flatten_trajectories
from irlhf.envs.gym import evaluate
from irlhf.envs.tabular import random_mdp, sample_trajectories
from irlhf.irl import iq_learn
from irlhf.planning import soft_value_iteration

torch.set_num_threads(1)


def test_loss_on_a_hand_computed_batch():
    """Q table (3 states, 2 actions); transitions (0, a=0, s'=1, not done) and (1, a=1, s'=2, done)."""
    Q = torch.tensor([[1.0, 0.0], [0.5, 2.0], [-1.0, 3.0]], dtype=torch.float64)
    s, a, s2, d = torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([0.0, 1.0])
    alpha, gamma, chi = 0.5, 0.9, 0.25
    V = [alpha * math.log(math.exp(Q[i, 0].item() / alpha) + math.exp(Q[i, 1].item() / alpha)) for i in range(3)]
    r = [1.0 - gamma * V[1], 2.0 - 0.0]  # terminal: V(s') = 0
    value = [V[0] - gamma * V[1], V[1] - 0.0]
    expected_none = -np.mean(r) + np.mean(value)
    expected_chi = expected_none + np.mean(np.square(r)) / (4 * chi)
    loss, parts = iq_learn.iq_loss(Q[s], Q[s2], a, d, alpha=alpha, gamma=gamma, divergence="chi2", chi_alpha=chi)
    assert loss.item() == pytest.approx(expected_chi, abs=1e-12)
    assert parts["chi2_loss"] == pytest.approx(np.mean(np.square(r)) / (4 * chi), abs=1e-12)
    assert parts["reward"] == pytest.approx(np.mean(r), abs=1e-12)
    loss_none, parts_none = iq_learn.iq_loss(Q[s], Q[s2], a, d, alpha=alpha, gamma=gamma, divergence="none")
    assert loss_none.item() == pytest.approx(expected_none, abs=1e-12)
    assert parts_none["chi2_loss"] == 0.0
    # without the regulariser the loss telescopes to soft BC: alpha * E[-log softmax(Q / alpha)(a | s)]
    bc = -alpha * torch.log_softmax(Q[s] / alpha, dim=-1).gather(1, a[:, None]).mean()
    assert loss_none.item() == pytest.approx(bc.item(), abs=1e-12)


def _tabular_fit(divergence, chi_alpha):
    mdp = random_mdp(6, 3, 3, seed=0, discount=0.9)
    _, _, pi = soft_value_iteration(mdp, mdp.true_reward)
    demos = sample_trajectories(mdp, pi, n=500, horizon=20, seed=0)
    config = iq_learn.Config(alpha=1.0, gamma=0.9, divergence=divergence, chi_alpha=chi_alpha, hidden_sizes=(),
                             lr=0.05, batch_size=100_000, updates=800, log_every=200)
    result = iq_learn.train((spaces.Discrete(6), spaces.Discrete(3)), demos, config)
    with torch.no_grad():
        learned = torch.softmax(result.q_net(np.arange(6)) / config.alpha, dim=-1).numpy()
    t = flatten_trajectories(demos)
    counts = np.zeros((6, 3))
    np.add.at(counts, (t.obs, t.acts), 1)
    return result, learned, pi, counts / counts.sum(axis=1, keepdims=True)


def test_tabular_none_is_soft_bc_and_recovers_the_empirical_policy():
    _, learned, pi, empirical = _tabular_fit("none", 0.5)
    assert 0.5 * np.abs(learned - empirical).sum(axis=1).max() < 2e-3
    assert 0.5 * np.abs(learned - pi).sum(axis=1).max() < 0.05


def test_tabular_chi2_recovers_the_soft_optimal_expert():
    """10,000 expert transitions; the tabular Q (one-hot states, linear net) with a weak chi^2 penalty
    gives softmax(Q / alpha) within total variation 0.05 of the exact soft-optimal policy in every state
    (the sampling noise alone is about 0.02); the reward it returns is Q(s, a) - gamma V(s')."""
    result, learned, pi, _ = _tabular_fit("chi2", 5.0)
    assert 0.5 * np.abs(learned - pi).sum(axis=1).max() < 0.05
    assert (learned.argmax(axis=1) == pi.argmax(axis=1)).all()
    # the policy's distribution is softmax(Q / alpha) and its greedy action argmax Q
    probs = result.policy.module.distribution(np.arange(6)).probs.detach().numpy()
    np.testing.assert_allclose(probs, learned, atol=1e-6)
    np.testing.assert_array_equal(result.policy(np.arange(6)), learned.argmax(axis=1))
    with torch.no_grad():
        Q = result.q_net(np.arange(6)).numpy()
    V = np.log(np.exp(Q).sum(axis=1))
    obs, acts, nxt = np.array([0, 3, 5]), np.array([2, 0, 1]), np.array([1, 1, 4])
    np.testing.assert_allclose(result.reward(obs, acts, nxt), Q[obs, acts] - 0.9 * V[nxt], atol=1e-5)
    assert isinstance(result.reward(3, 0, 1), float)


def test_cartpole_offline_beats_random(gym_demos):
    demos = gym_demos("CartPole-v1", 2, 0)
    config = iq_learn.Config(hidden_sizes=(), updates=500, log_every=100, seed=0)
    result = iq_learn.train("CartPole-v1", demos, config)
    mean, _ = evaluate("CartPole-v1", result.policy, n_episodes=10, seed=100)
    assert mean > 100  # random ~ 22
    assert [h["update"] for h in result.history] == [100, 200, 300, 400, 500]
    again = iq_learn.train("CartPole-v1", demos, config)  # seeded: same weights
    for p, q in zip(result.q_net.parameters(), again.q_net.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    obs = demos[0].obs[:5]
    assert result.reward(obs, demos[0].acts[:5], demos[0].obs[1:6]).shape == (5,)


def test_callback_stops_early(gym_demos):
    demos = gym_demos("CartPole-v1", 1, 0)
    seen = []
    result = iq_learn.train("CartPole-v1", demos, iq_learn.Config(updates=50, log_every=10, hidden_sizes=(8,)),
                            callback=lambda record, policy: seen.append(record["update"]) or len(seen) == 2)
    assert seen == [10, 20] and len(result.history) == 2


def test_bad_input(gym_demos):
    cartpole = gym_demos("CartPole-v1", 1, 0)
    with pytest.raises(ValidationError, match="empty"):
        iq_learn.train("CartPole-v1", [], iq_learn.Config())
    t = flatten_trajectories(cartpole)
    obs = np.array(t.obs)
    obs[3, 1] = np.nan
    bad = types.SimpleNamespace(obs=obs, acts=t.acts, next_obs=t.next_obs, dones=t.dones)
    with pytest.raises(ValidationError, match="non-finite"):
        iq_learn.train("CartPole-v1", bad, iq_learn.Config())
    with pytest.raises(ValidationError, match="non-finite"):
        Trajectory(obs=obs, acts=np.zeros(len(obs) - 1, dtype=np.int64))
    acts = np.array(t.acts)
    acts[4] = 2
    with pytest.raises(ValidationError, match=r"demos.acts\[4\]"):
        iq_learn.train("CartPole-v1", Transitions(t.obs, acts, t.next_obs, t.dones), iq_learn.Config())
    with pytest.raises(ValidationError, match=r"demos.obs: shape"):
        iq_learn.train((spaces.Box(-1, 1, (3,)), spaces.Box(-1, 1, (1,))), cartpole, iq_learn.Config())
    with pytest.raises(ValidationError, match="shape"):
        iq_learn.train((spaces.Box(-1, 1, (3,)), spaces.Discrete(2)), cartpole, iq_learn.Config())
    with pytest.raises(ValidationError, match="divergence"):
        iq_learn.Config(divergence="kl")
    for field, value in (("alpha", 0.0), ("gamma", 1.0), ("chi_alpha", -1.0), ("updates", 0), ("batch_size", 0)):
        with pytest.raises(ValidationError, match=field):
            iq_learn.Config(**{field: value})
    with pytest.raises(ValidationError, match="config"):
        iq_learn.train("CartPole-v1", cartpole, config={"alpha": 1.0})


# -- online and continuous IQ-Learn ------------------------------------------------------------
def test_online_loss_on_a_hand_computed_batch():
    """Two expert and two policy transitions on a Q table (4 states, 2 actions): the value term runs over all
    four, -E[r] and the chi^2 term over the expert two (or all four with regularize_mixed)."""
    Q = np.array([[1.0, 0.0], [0.5, 2.0], [-1.0, 3.0], [0.2, -0.4]])
    s, a, s2 = np.array([0, 1, 2, 3]), np.array([0, 1, 1, 0]), np.array([1, 2, 3, 0])
    d = np.array([0.0, 1.0, 0.0, 0.0])
    expert = np.array([True, True, False, False])
    alpha, gamma, chi = 0.5, 0.9, 0.25
    V = alpha * np.log(np.exp(Q / alpha).sum(axis=1))
    y = gamma * (1 - d) * V[s2]
    r = Q[s, a] - y
    value = np.mean(V[s] - y)  # over expert and policy transitions
    expected = -np.mean(r[expert]) + value + np.mean(r[expert] ** 2) / (4 * chi)
    expected_mixed = -np.mean(r[expert]) + value + np.mean(r ** 2) / (4 * chi)
    Qt = torch.tensor(Q, dtype=torch.float64)
    args = (Qt[s], Qt[s2], torch.tensor(a), torch.tensor(d))
    loss, parts = iq_learn.iq_loss(*args, alpha=alpha, gamma=gamma, chi_alpha=chi, is_expert=torch.tensor(expert))
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    assert parts["value_loss"] == pytest.approx(value, abs=1e-12)
    assert parts["softq_loss"] == pytest.approx(-np.mean(r[expert]), abs=1e-12)
    assert parts["expert_q"] == pytest.approx(np.mean(Q[s, a][expert]), abs=1e-12)
    assert parts["policy_q"] == pytest.approx(np.mean(Q[s, a][~expert]), abs=1e-12)
    mixed, _ = iq_learn.iq_loss(*args, alpha=alpha, gamma=gamma, chi_alpha=chi, is_expert=torch.tensor(expert),
                                regularize_mixed=True)
    assert mixed.item() == pytest.approx(expected_mixed, abs=1e-12)
    assert abs(expected_mixed - expected) > 0.1  # the two chi^2 forms differ on this batch
    offline, _ = iq_learn.iq_loss(*args, alpha=alpha, gamma=gamma, chi_alpha=chi)  # all four as expert
    assert offline.item() == pytest.approx(-np.mean(r) + value + np.mean(r ** 2) / (4 * chi), abs=1e-12)


class _StubActor:
    """Deterministic 'samples': fixed actions and log-probs for the 2N rows cat([s, s'])."""

    def __init__(self, acts, log_pi):
        self.acts, self.log_pi = torch.tensor(acts), torch.tensor(log_pi)

    def sample(self, x, generator=None):
        assert len(x) == len(self.acts)
        return self.acts, self.log_pi


def test_continuous_critic_loss_on_a_hand_computed_batch():
    x = np.array([[0.5, -1.0], [2.0, 0.0], [-0.3, 0.7]])
    xn = np.array([[1.0, 1.0], [0.0, -2.0], [0.4, 0.1]])
    a = np.array([[0.2], [-0.6], [0.9]])
    d = np.array([0.0, 0.0, 1.0])
    expert = np.array([True, False, True])
    a_pi = np.array([[0.1], [-0.2], [0.3], [0.5], [-0.7], [0.0]])  # for s then s'
    log_pi = np.array([0.4, -1.0, 2.0, 0.3, 0.6, -0.5])
    alpha, gamma, chi = 0.2, 0.95, 0.5

    def q_np(x, a):  # Q(s, a) = 2 x0 - x1 - 3 a^2 + x0 a
        return 2 * x[:, 0] - x[:, 1] - 3 * a[:, 0] ** 2 + x[:, 0] * a[:, 0]

    def critic(x, a):
        return 2 * x[:, 0] - x[:, 1] - 3 * a[:, 0] ** 2 + x[:, 0] * a[:, 0]

    V = q_np(x, a_pi[:3]) - alpha * log_pi[:3]
    Vn = q_np(xn, a_pi[3:]) - alpha * log_pi[3:]
    y = gamma * (1 - d) * Vn
    r = q_np(x, a) - y
    expected = -np.mean(r[expert]) + np.mean(V - y) + np.mean(r[expert] ** 2) / (4 * chi)
    T = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    loss, parts = iq_learn.sac_iq_loss(critic, _StubActor(a_pi, log_pi), T(x), T(a), T(xn), T(d),
                                       torch.tensor(expert), alpha=alpha, gamma=gamma, chi_alpha=chi)
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    assert parts["reward"] == pytest.approx(np.mean(r[expert]), abs=1e-12)
    assert parts["policy_q"] == pytest.approx(q_np(x, a)[1], abs=1e-12)
    # a target critic replaces Q only in V(s')
    target = lambda x, a: critic(x, a) + 1.0  # noqa: E731
    y_t = gamma * (1 - d) * (Vn + 1.0)
    r_t = q_np(x, a) - y_t
    expected_t = -np.mean(r_t[expert]) + np.mean(V - y_t) + np.mean(r_t[expert] ** 2) / (4 * chi)
    loss_t, _ = iq_learn.sac_iq_loss(critic, _StubActor(a_pi, log_pi), T(x), T(a), T(xn), T(d),
                                     torch.tensor(expert), alpha=alpha, gamma=gamma, chi_alpha=chi,
                                     target_critic=target)
    assert loss_t.item() == pytest.approx(expected_t, abs=1e-12)
    # the SAC actor loss E[alpha log pi - Q(s, a~pi)] on the first three rows
    stub = _StubActor(a_pi[:3], log_pi[:3])
    expected_actor = np.mean(alpha * log_pi[:3] - q_np(x, a_pi[:3]))
    assert iq_learn.actor_loss(critic, stub, T(x), alpha=alpha).item() == pytest.approx(expected_actor, abs=1e-12)


def test_tanh_gaussian_log_prob_matches_torch():
    actor = iq_learn.TanhGaussianActor(3, 2, (8,), "relu", seed=0)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    a, log_pi = actor.sample(x, torch.Generator().manual_seed(1))
    mu, log_std = actor(x)
    assert (log_std >= -5).all() and (log_std <= 2).all() and (a.abs() < 1).all()
    dist = torch.distributions.TransformedDistribution(torch.distributions.Normal(mu, log_std.exp()),
                                                       [torch.distributions.TanhTransform()])
    torch.testing.assert_close(log_pi, dist.log_prob(a).sum(-1), atol=1e-4, rtol=1e-4)


@pytest.mark.heavy
def test_continuous_offline_learns_a_nonlinear_expert():
    """Box observations and actions, expert a = 0.8 sin(3 s): the actor, trained only through the critic
    (IQ loss on the critic, SAC loss on the actor), gets within mean squared error 0.05 of the expert (a
    constant policy: ~0.3); the policy / reward callables have the documented shapes."""
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, (500, 1)).astype(np.float32)
    nxt = rng.uniform(-1, 1, (500, 1)).astype(np.float32)
    demos = Transitions(obs, (0.8 * np.sin(3 * obs)).astype(np.float32), nxt, np.zeros(500, dtype=bool))
    box = spaces.Box(-1, 1, (1,), dtype=np.float32)
    config = iq_learn.Config(gamma=0.9, updates=800, batch_size=128, hidden_sizes=(64, 64), activation="relu",
                             actor_lr=3e-3, critic_lr=3e-3, log_every=500, seed=0)
    result = iq_learn.train((box, box), demos, config)
    grid = np.linspace(-1, 1, 50, dtype=np.float32)[:, None]
    actions = result.policy(grid)
    assert actions.shape == (50, 1) and actions.dtype == np.float32
    assert np.mean((actions - 0.8 * np.sin(3 * grid)) ** 2) < 0.05  # seeds 0, 1, 2: 0.001, 0.038, 0.011
    assert result.policy(grid[0]).shape == (1,)
    assert result.policy.observation_space is box and result.policy.action_space is box
    assert isinstance(result.actor, iq_learn.TanhGaussianActor) and isinstance(result.q_net, iq_learn.Critic)
    assert {"actor_loss", "expert_q", "policy_q", "chi2_loss", "value_loss", "softq_loss"} <= set(result.history[-1])
    # reward = Q(s, a) - gamma V(s'), V(s') at the actor's mean action
    r = result.reward(obs[:4], demos.acts[:4], nxt[:4])
    with torch.no_grad():
        x, xn = torch.as_tensor((obs[:4] - obs.mean()) / obs.std()), torch.as_tensor((nxt[:4] - obs.mean()) / obs.std())
        a_next, log_pi = result.actor.mean_action(xn)
        expected = result.q_net(x, torch.tensor(demos.acts[:4])) - 0.9 * (result.q_net(xn, a_next) - 0.01 * log_pi)
    np.testing.assert_allclose(r, expected.numpy(), rtol=1e-4, atol=1e-4)
    assert isinstance(result.reward(obs[0], demos.acts[0], nxt[0]), float)


@pytest.mark.heavy
def test_online_cartpole_beats_random(gym_demos):
    demos = gym_demos("CartPole-v1", 1, 0)
    config = iq_learn.Config(online=True, env_steps=2000, learning_starts=500, hidden_sizes=(64,), log_every=500,
                             use_target=True, seed=0)
    result = iq_learn.train("CartPole-v1", demos, config)
    mean, _ = evaluate("CartPole-v1", result.policy, n_episodes=10, seed=100)
    assert mean > 100  # random ~ 22; seeds 0, 1, 2 gave 179, 268, 198
    assert [h["update"] for h in result.history] == [500, 1000, 1500]
    assert [h["env_steps"] for h in result.history] == [1000, 1500, 2000]
    last = result.history[-1]
    assert last["episode_return"] > 30 and last["expert_q"] > last["policy_q"]


def test_online_is_seeded_and_accepts_an_env(gym_demos):
    import gymnasium

    demos = gym_demos("CartPole-v1", 1, 0)
    config = iq_learn.Config(online=True, env_steps=150, learning_starts=100, hidden_sizes=(8,), log_every=25,
                             use_target=True, eval_every=50, eval_episodes=1, seed=3)
    a = iq_learn.train("CartPole-v1", demos, config)
    assert "eval_return" not in a.history[0] and a.history[1]["eval_return"] >= 8  # CartPole lasts >= 8 steps
    env = gymnasium.make("CartPole-v1")
    b = iq_learn.train(env, demos, config)
    env.close()
    for p, q in zip(a.q_net.parameters(), b.q_net.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert [h["env_steps"] for h in a.history] == [125, 150]


def test_online_and_continuous_bad_input(gym_demos):
    cartpole = gym_demos("CartPole-v1", 1, 0)
    pendulum = gym_demos("Pendulum-v1", 1, 0)
    online = iq_learn.Config(online=True, env_steps=100, learning_starts=10)
    with pytest.raises(ValidationError, match="online IQ-Learn acts in the environment"):
        iq_learn.train((spaces.Box(-5, 5, (4,)), spaces.Discrete(2)), cartpole, online)
    with pytest.raises(ValidationError, match=r"demos.acts\[0\]"):  # continuous demos, Discrete actions
        iq_learn.train((spaces.Box(-8, 8, (3,)), spaces.Discrete(2)), pendulum, iq_learn.Config())
    with pytest.raises(ValidationError, match="demos.acts: shape"):  # discrete demos, 2-d Box actions
        iq_learn.train((spaces.Box(-5, 5, (4,)), spaces.Box(-1, 1, (2,))), cartpole, iq_learn.Config())
    with pytest.raises(ValidationError, match="demos.obs"):
        iq_learn.train("Pendulum-v1", cartpole, online)
    with pytest.raises(ValidationError, match="empty"):
        iq_learn.train("Pendulum-v1", [], online)
    t = flatten_trajectories(pendulum)
    obs = np.array(t.obs)
    obs[2, 0] = np.nan
    with pytest.raises(ValidationError, match="non-finite"):
        iq_learn.train("Pendulum-v1", Transitions(obs, t.acts, t.next_obs, t.dones), online)
    with pytest.raises(ValidationError, match="unbounded"):
        iq_learn.train((spaces.Box(-8, 8, (3,)), spaces.Box(-np.inf, np.inf, (1,))), pendulum, iq_learn.Config())
    with pytest.raises(ValidationError, match="eval_every"):
        iq_learn.train((spaces.Box(-8, 8, (3,)), spaces.Box(-2, 2, (1,))), pendulum, iq_learn.Config(eval_every=5))
    with pytest.raises(ValidationError, match="learning_starts"):
        iq_learn.Config(online=True, env_steps=100, learning_starts=100)
    for field, value in (("target_tau", -0.1), ("target_tau", 0.0), ("target_tau", 1.5), ("env_steps", 0),
                         ("learning_starts", -1), ("buffer_size", 0), ("updates_per_step", 0), ("eval_every", -1),
                         ("eval_episodes", 0), ("actor_lr", 0.0), ("critic_lr", -1.0), ("online", 1),
                         ("regularize_mixed", "yes"), ("use_target", None)):
        with pytest.raises(ValidationError, match=field):
            iq_learn.Config(**{field: value})


def test_online_continuous_runs_and_logs(gym_demos):
    """A smoke run of online actor-critic IQ-Learn on Pendulum-v1 (one 200-step random episode, then 100
    updates): the history has the online and actor-critic fields, the policy acts within the bounds."""
    demos = gym_demos("Pendulum-v1", 1, 0)
    config = iq_learn.Config(online=True, env_steps=300, learning_starts=200, hidden_sizes=(16,), log_every=50,
                             batch_size=16, seed=0)
    result = iq_learn.train("Pendulum-v1", demos, config)
    assert [(h["update"], h["env_steps"]) for h in result.history] == [(50, 250), (100, 300)]
    last = result.history[-1]
    assert last["episode_return"] < -100 and np.isfinite(last["actor_loss"]) and np.isfinite(last["policy_q"])
    obs = np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 8.0]], dtype=np.float32)
    actions = result.policy(obs)
    assert actions.shape == (2, 1) and np.all(np.abs(actions) <= 2.0)
    mean, _ = evaluate("Pendulum-v1", result.policy, n_episodes=1, seed=0)
    assert np.isfinite(mean)
