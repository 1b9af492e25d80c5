import math
import types

import numpy as np
import pytest
import torch
from gymnasium import spaces

from irlhf.core.errors import ValidationError
from irlhf.data.types import Trajectory, Transitions, flatten_trajectories
from irlhf.envs.gym import collect_demos, evaluate, make_expert
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


def test_cartpole_offline_beats_random():
    demos = collect_demos("CartPole-v1", make_expert("CartPole-v1"), 2, seed=0)
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


def test_callback_stops_early():
    demos = collect_demos("CartPole-v1", make_expert("CartPole-v1"), 1, seed=0)
    seen = []
    result = iq_learn.train("CartPole-v1", demos, iq_learn.Config(updates=50, log_every=10, hidden_sizes=(8,)),
                            callback=lambda record, policy: seen.append(record["update"]) or len(seen) == 2)
    assert seen == [10, 20] and len(result.history) == 2


def test_bad_input():
    cartpole = collect_demos("CartPole-v1", make_expert("CartPole-v1"), 1, seed=0)
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
    with pytest.raises(ValidationError, match="continuous actions are not implemented"):
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
