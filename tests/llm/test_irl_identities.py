"""Lecture 003's question, "do RLHF and IRL line up?", answered by identities checked numerically on tiny models
(derivations in docs/irl_for_llms.md):

1. the Bradley-Terry reward-model loss is the sequence MaxEnt IRL likelihood with the partition restricted to
   the two compared completions;
2. with the implicit reward R = beta log(pi_theta / pi_ref), base measure pi_ref and the exact partition,
   sequence MaxEnt IRL is maximum likelihood (SFT): Z = 1 and the gradients agree;
3. the KL-regularised RLHF optimum pi* ~ pi_ref exp(R / beta) is that MaxEnt model: it maximises
   E_pi[R] - beta KL(pi || pi_ref), with value beta log Z; R = beta log(pi_theta / pi_ref) gives back pi_theta;
   DPO's loss is identity 1 on that implicit reward.

The exact-partition checks enumerate a whole completion space: a GPT-2 with a 5-token vocabulary and completions
of exactly 3 tokens (5^3 = 125 sequences; by the chain rule their probabilities sum to 1). Float64 there.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from irlhf.data.text import TextPairs
from irlhf.llm import dpo, reward, seq_maxent, sft
from irlhf.llm.logps import sequence_logps
from irlhf.llm.tokenize import collate, collate_pairs, encode_pairs, pad_id_of

torch.set_num_threads(1)

V, L = 5, 3  # vocabulary and completion length of the enumerated space
PROMPTS = torch.tensor([[0, 3, 1], [2, 2, 4]])  # two hand-built prompts (token ids < V)
DEMOS = torch.tensor([[1, 4, 0], [3, 3, 2]])  # one expert completion y_E per prompt
BETA = 0.3

PAIRS = TextPairs(("the film was", "the plot was", "i loved", "the acting was"),
                  (" great", " great and fun", " the music", " great"),
                  (" awful", " dull", " nothing", " awful; dull"))


# -- helpers ---------------------------------------------------------------------------------------------
def support() -> torch.Tensor:
    """Every completion of exactly L tokens over the V-token vocabulary: (V^L, L)."""
    return torch.tensor(list(itertools.product(range(V), repeat=L)))


def exact_logps(model, prompts: torch.Tensor, completions: torch.Tensor) -> torch.Tensor:
    """log pi(y | x) in the model's dtype (float64 here; ``sequence_logps`` works in fp32): prompts (B, P),
    completions (B, K, L) -> (B, K)."""
    b, k, _ = completions.shape
    p = prompts.shape[1]
    ids = torch.cat([prompts[:, None].expand(b, k, p), completions], -1).reshape(b * k, -1)
    logits = model(input_ids=ids, use_cache=False).logits[:, p - 1:-1]  # positions predicting the completion
    logp = torch.log_softmax(logits, -1).gather(-1, ids[:, p:, None])[..., 0].sum(-1)
    return logp.view(b, k)


def half(n: int) -> torch.Tensor:
    """log q = log(1/2) for each of the two completions of n pairs: a uniform proposal over {y_w, y_l}."""
    return torch.full((n, 2), math.log(0.5), dtype=torch.float64)


def grads(loss: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params, retain_graph=True)])


@pytest.fixture(scope="module")
def tiny_lms(make_model):
    """(pi_theta, pi_ref): two different float64 GPT-2s over the 5-token vocabulary."""
    return make_model(V, seed=0).double(), make_model(V, seed=1).double()


@pytest.fixture(scope="module")
def space():
    return support()[None].expand(len(PROMPTS), -1, -1)  # (B, 125, L)


# -- 1. Bradley-Terry = MaxEnt IRL with a two-completion partition ---------------------------------------
def test_bradley_terry_is_maxent_irl_over_the_compared_pair(model, tokenizer):
    rm = reward.make_reward_model(model.double(), tokenizer, seed=1)
    params = [p for p in rm.parameters() if p.requires_grad]
    chosen, rejected, _ = encode_pairs(tokenizer, PAIRS)
    scores = reward.rewards(rm, collate(chosen + rejected, pad_id_of(tokenizer))).double()
    r_w, r_l = scores[:len(chosen)], scores[len(chosen):]

    bt = reward.pairwise_loss(r_w, r_l)
    # partition over the support {y_w, y_l}, uniform proposal q = 1/2: the IS estimate is exact
    log_z = seq_maxent.log_partition(torch.stack([r_w, r_l], -1), half(len(r_w)))
    maxent = seq_maxent.maxent_loss(r_w, log_z)

    torch.testing.assert_close(maxent, bt, rtol=0, atol=1e-12)
    torch.testing.assert_close(log_z, torch.logaddexp(r_w, r_l), rtol=0, atol=1e-12)
    g_bt, g_maxent = grads(bt.sum(), params), grads(maxent.sum(), params)
    assert g_bt.abs().max() > 1e-3  # a real gradient, not two zeros
    torch.testing.assert_close(g_maxent, g_bt, rtol=0, atol=1e-10)


# -- 2. implicit reward + exact partition + base measure pi_ref = SFT --------------------------------------
def test_exact_partition_of_the_implicit_reward_is_one(tiny_lms, space):
    policy, ref = tiny_lms
    with torch.no_grad():
        logp, logp_ref = exact_logps(policy, PROMPTS, space), exact_logps(ref, PROMPTS, space)
        assert logp.shape == (len(PROMPTS), V ** L)
        # the enumeration is the whole support: each model's probabilities sum to 1
        torch.testing.assert_close(logp.logsumexp(-1), torch.zeros(len(PROMPTS), dtype=torch.float64),
                                   rtol=0, atol=1e-9)
        torch.testing.assert_close(logp_ref.logsumexp(-1), torch.zeros(len(PROMPTS), dtype=torch.float64),
                                   rtol=0, atol=1e-9)
        # Z = sum_y pi_ref(y|x) exp(R(x,y) / beta) with R = beta log(pi_theta / pi_ref) is sum_y pi_theta = 1
        implicit = BETA * (logp - logp_ref)
        log_z = seq_maxent.log_partition(implicit / BETA + logp_ref, torch.full_like(logp, -math.log(V ** L)))
    torch.testing.assert_close(log_z, torch.zeros_like(log_z), rtol=0, atol=1e-9)


def test_maxent_irl_with_implicit_reward_has_the_sft_gradient(tiny_lms, space):
    policy, ref = tiny_lms
    params = list(policy.parameters())
    with torch.no_grad():
        logp_ref = exact_logps(ref, PROMPTS, space)
    logp = exact_logps(policy, PROMPTS, space)
    implicit = BETA * (logp - logp_ref)  # R(x, y) = beta log(pi_theta / pi_ref)
    energy = implicit / BETA + logp_ref  # log of pi_ref(y|x) exp(R(x,y) / beta): the base measure folded in
    log_z = seq_maxent.log_partition(energy, torch.full_like(energy, -math.log(V ** L)))  # exact: whole support
    demo = (space == DEMOS[:, None]).all(-1).double().argmax(-1)  # index of y_E in the enumeration
    maxent = seq_maxent.maxent_loss(energy.gather(1, demo[:, None])[:, 0], log_z)

    # SFT: -log pi_theta(y_E | x) through the library's token losses (fp32 cross-entropy) ...
    ids = torch.cat([PROMPTS, DEMOS], -1)
    mask = torch.zeros_like(ids, dtype=torch.bool)
    mask[:, PROMPTS.shape[1]:] = True
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "completion_mask": mask}
    nll, _, _ = sft.token_losses(policy, batch)
    sft_loss = nll.sum(-1)
    # ... and sequence_logps (fp32) agree with the float64 enumeration
    torch.testing.assert_close(maxent, sft_loss.double(), rtol=0, atol=1e-6)
    torch.testing.assert_close(sequence_logps(policy, batch).double(), -maxent.detach(), rtol=0, atol=1e-5)

    g_maxent, g_sft = grads(maxent.sum(), params), grads(sft_loss.sum(), params)
    assert g_sft.abs().max() > 1e-2
    torch.testing.assert_close(g_maxent, g_sft, rtol=0, atol=1e-6)  # fp32 rounding of the library's SFT loss
    # in float64 throughout the two gradients agree to rounding
    sft64 = -logp.gather(1, demo[:, None])[:, 0]
    torch.testing.assert_close(g_maxent, grads(sft64.sum(), params), rtol=0, atol=1e-10)
    # the partition term contributes sum_y pi_theta grad log pi_theta = grad sum_y pi_theta = 0
    g_log_z = grads(log_z.sum(), params)
    assert g_log_z.abs().max() < 1e-9


# -- 3. the KL-regularised optimum is the MaxEnt IRL model; DPO is identity 1 on its reward --------------
def kl_objective(logits: torch.Tensor, rewards: torch.Tensor, logp_ref: torch.Tensor, beta: float) -> torch.Tensor:
    """E_pi[R] - beta KL(pi || pi_ref) per prompt, pi = softmax(logits) over the support: (B, K) -> (B,)."""
    logpi = torch.log_softmax(logits, -1)
    return (logpi.exp() * (rewards - beta * (logpi - logp_ref))).sum(-1)


@pytest.fixture(scope="module")
def ref_and_rewards(tiny_lms, space):
    with torch.no_grad():
        logp_ref = exact_logps(tiny_lms[1], PROMPTS, space)
    rewards = 2 * torch.randn(logp_ref.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    return logp_ref, rewards


def test_kl_regularised_optimum_maximises_the_rlhf_objective(ref_and_rewards):
    logp_ref, rewards = ref_and_rewards
    log_star = seq_maxent.kl_regularised_optimum(logp_ref, rewards, BETA)
    torch.testing.assert_close(log_star.logsumexp(-1), torch.zeros(len(PROMPTS), dtype=torch.float64),
                               rtol=0, atol=1e-12)
    logits = log_star.clone().requires_grad_(True)
    best = kl_objective(logits, rewards, logp_ref, BETA)
    (g,) = torch.autograd.grad(best.sum(), logits)
    assert g.abs().max() < 1e-8  # stationary in every direction of the simplex
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for scale in (1e-3, 1e-1, 1.0):
            for _ in range(20):
                other = kl_objective(log_star + scale * torch.randn(log_star.shape, dtype=torch.float64,
                                                                    generator=gen), rewards, logp_ref, BETA)
                assert bool((other <= best + 1e-12).all())
        # the greedy policy and pi_ref themselves are worse too
        assert bool((kl_objective(logp_ref, rewards, logp_ref, BETA) < best).all())


def test_kl_regularised_optimum_value_is_beta_log_partition(ref_and_rewards):
    logp_ref, rewards = ref_and_rewards
    log_star = seq_maxent.kl_regularised_optimum(logp_ref, rewards, BETA)
    value = kl_objective(log_star, rewards, logp_ref, BETA)
    # Z(x) = sum_y pi_ref(y|x) exp(R(x,y) / beta), the MaxEnt partition with base measure pi_ref (exact: whole support)
    log_z = seq_maxent.log_partition(rewards / BETA + logp_ref, torch.full_like(rewards, -math.log(V ** L)))
    torch.testing.assert_close(value, BETA * log_z, rtol=0, atol=1e-10)
    # and pi* is the MaxEnt IRL model: log pi*(y|x) = log pi_ref + R / beta - log Z
    torch.testing.assert_close(log_star, logp_ref + rewards / BETA - log_z[:, None], rtol=0, atol=1e-10)


def test_implicit_reward_gives_back_the_policy(tiny_lms, space):
    policy, ref = tiny_lms
    with torch.no_grad():
        logp, logp_ref = exact_logps(policy, PROMPTS, space), exact_logps(ref, PROMPTS, space)
    implicit = BETA * (logp - logp_ref)
    torch.testing.assert_close(seq_maxent.kl_regularised_optimum(logp_ref, implicit, BETA), logp, rtol=0, atol=1e-12)
    # a per-prompt shift c(x) (DPO's beta log Z(x)) changes nothing: the reward is identified up to c(x)
    shifted = implicit + torch.tensor([[5.0], [-2.0]], dtype=torch.float64)
    torch.testing.assert_close(seq_maxent.kl_regularised_optimum(logp_ref, shifted, BETA), logp, rtol=0, atol=1e-12)


def test_dpo_loss_is_bradley_terry_on_the_implicit_reward(make_model, tokenizer):
    policy = make_model(len(tokenizer), seed=0).double()
    ref = make_model(len(tokenizer), seed=1).double()
    params = list(policy.parameters())
    chosen, rejected, _ = encode_pairs(tokenizer, PAIRS)
    batch = collate_pairs(chosen, rejected, pad_id_of(tokenizer))
    n = len(chosen)
    with torch.no_grad():
        ref_logps = sequence_logps(ref, batch).double()
    logps = sequence_logps(policy, batch).double()
    beta = 0.5
    losses, _, _ = dpo.loss(logps[:n], logps[n:], ref_logps[:n], ref_logps[n:], beta=beta)

    implicit = beta * (logps - ref_logps)  # R = beta log(pi_theta / pi_ref)
    r_w, r_l = implicit[:n], implicit[n:]
    bt = reward.pairwise_loss(r_w, r_l)
    log_z = seq_maxent.log_partition(torch.stack([r_w, r_l], -1), half(n))
    maxent = seq_maxent.maxent_loss(r_w, log_z)

    torch.testing.assert_close(bt, losses, rtol=0, atol=1e-12)
    torch.testing.assert_close(maxent, losses, rtol=0, atol=1e-12)
    g_dpo = grads(losses.sum(), params)
    assert g_dpo.abs().max() > 1e-3
    torch.testing.assert_close(grads(bt.sum(), params), g_dpo, rtol=0, atol=1e-10)
    torch.testing.assert_close(grads(maxent.sum(), params), g_dpo, rtol=0, atol=1e-10)
