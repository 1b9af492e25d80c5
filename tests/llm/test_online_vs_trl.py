"""GRPO and RLOO against TRL 1.16's GRPOTrainer and RLOOTrainer: the same model (moved off its initial weights),
prompts, reward function and SAME sampled completions (TRL's generation is patched to return the completions our
step 0 sampled) give the same loss at step 0 (1e-6) and the same gradient norm (1e-5 relative), with beta > 0 so
the KL term counts. TRL computes its own advantages, old / reference log-probs and loss. Runs where TRL is
importable; skipped with that reason otherwise.

The prompts all tokenise to 5 tokens: TRL left-pads prompts of different lengths for its training forward passes,
and GPT-2 (transformers 5) takes its position ids from the column, not from the attention mask, so a left-padded
prompt is scored at shifted positions there (ours are right-padded, as generation sees them).
"""

import copy
import importlib.util
import tempfile

import numpy as np
import pytest
import torch

from irlhf.llm import group_rollout, grpo, rloo

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("trl") is None,
    reason="TRL not installed (pip install trl): the comparison with its trainers is skipped")

PROMPTS = ["the film was", "the plot was", "the music was", "i loved the"]  # 5 tokens each
LETTERS = set("abcdefghijklmnopqrstuvwxyz ")
G, MAX_NEW, BETA = 3, 8, 0.1


def letters(completions):
    return [sum(ch in LETTERS for ch in c) / 8 for c in completions]


def our_reward(prompts, completions):
    return np.array(letters(completions))


def trl_reward(prompts, completions, **kwargs):
    return letters(completions)


@pytest.fixture
def models(tokenizer, make_model, tmp_path):
    """(policy, reference): the tiny GPT-2 saved to and loaded from tmp_path/"ref" is pi_ref (TRL loads its reference
    from the policy's config path, which is that directory); the policy is a copy moved off it by seeded noise, so
    the k3 KL term has a value and a gradient (both are 0 at pi = pi_ref)."""
    from transformers import GPT2LMHeadModel

    make_model(len(tokenizer)).save_pretrained(tmp_path / "ref")
    reference = GPT2LMHeadModel.from_pretrained(tmp_path / "ref").eval()
    policy = copy.deepcopy(reference)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    assert policy.config._name_or_path == str(tmp_path / "ref")
    return policy, reference


def our_step(module, advantages_name, model, reference, tokenizer, config, monkeypatch):
    """Our step-0 history row, the completions it sampled ({prompt ids: [completion ids, ...]}) and its advantages
    ({(prompt ids, completion ids): A})."""
    rows, advantages = [], {}
    sample, compute_advantages = group_rollout.sample_completions, getattr(module, advantages_name)

    def recording_sample(model, tokenizer, prompt_ids, config, *, seed=0):
        samples = sample(model, tokenizer, prompt_ids, config, seed=seed)
        for ids, row, mask in zip(prompt_ids, samples.input_ids, samples.completion_mask):
            rows.append((tuple(ids), tuple(row[mask].tolist())))
        return samples

    def recording_advantages(*args, **kwargs):
        values = compute_advantages(*args, **kwargs)
        advantages.update(zip(rows, values.tolist()))
        return values

    with monkeypatch.context() as patch:
        patch.setattr(group_rollout, "sample_completions", recording_sample)
        patch.setattr(module, advantages_name, recording_advantages)
        result = module.train(model, tokenizer, PROMPTS, our_reward, config, ref_model=reference)
    sampled = {}
    for prompt_ids, completion_ids in rows:
        sampled.setdefault(prompt_ids, []).append(list(completion_ids))
    return result.history[0], sampled, advantages


def trl_step(trainer, sampled, monkeypatch, with_logprobs):
    """TRL's step-0 loss, gradient norm and advantages ({(prompt ids, completion ids): A}) with its generation
    replaced by our completions."""
    queues = {ids: list(rows) for ids, rows in sampled.items()}

    def generate(prompt_ids, *args, **kwargs):
        completion_ids = [queues[tuple(ids)].pop(0) for ids in prompt_ids]
        # GRPOTrainer's returns (completion ids, sampling log-probs or None); RLOOTrainer's the ids alone
        return (completion_ids, None) if with_logprobs else completion_ids

    monkeypatch.setattr(trainer, "_generate_single_turn", generate)
    model = trainer.model
    model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer's training loop, which is not run here
    batch = next(iter(trainer.get_train_dataloader()))
    inputs = trainer._prepare_inputs(batch)
    assert all(not rows for rows in queues.values())  # every one of our completions was used, once
    loss = trainer.compute_loss(model, inputs)
    loss.backward()
    norm = torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])
    keys = [(tuple(p[pm.bool()].tolist()), tuple(c[cm.bool()].tolist())) for p, pm, c, cm in
            zip(inputs["prompt_ids"], inputs["prompt_mask"], inputs["completion_ids"], inputs["completion_mask"])]
    return float(loss.detach()), float(norm), dict(zip(keys, inputs["advantages"].tolist()))


def check_equal(ours, our_advantages, trl_loss, trl_norm, trl_advantages):
    assert ours["loss"] == pytest.approx(trl_loss, abs=1e-6)
    assert ours["grad_norm"] == pytest.approx(trl_norm, rel=1e-5)
    assert our_advantages.keys() == trl_advantages.keys()
    for key, value in our_advantages.items():
        assert value == pytest.approx(trl_advantages[key], abs=1e-6)
    assert abs(ours["objective/kl"]) > 1e-3  # pi != pi_ref: the KL term is not trivially 0


COMMON = dict(steps=1, batch_size=len(PROMPTS), num_generations=G, max_new_tokens=MAX_NEW, beta=BETA,
              learning_rate=1e-3, max_grad_norm=None, progress=False, device="cpu")


def trl_args(config_class, out, **changes):
    return config_class(output_dir=out, num_generations=G, per_device_train_batch_size=len(PROMPTS) * G,
                        max_completion_length=MAX_NEW, beta=BETA, learning_rate=1e-3, shuffle_dataset=False,
                        use_cpu=True, bf16=False, gradient_checkpointing=False, report_to="none",
                        save_strategy="no", disable_tqdm=True, logging_steps=1, **changes)


@pytest.mark.parametrize("loss_type, bias_correction", [("grpo", False), ("dapo", True), ("dr_grpo", False)])
def test_grpo_equals_trl_grpo(tokenizer, models, monkeypatch, loss_type, bias_correction):
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    policy, reference = models
    ours, sampled, advantages = our_step(grpo, "group_advantages", copy.deepcopy(policy), reference, tokenizer,
                                         grpo.Config(loss_type=loss_type, use_bias_correction_kl=bias_correction,
                                                     **COMMON), monkeypatch)
    with tempfile.TemporaryDirectory() as out:
        trainer = GRPOTrainer(model=copy.deepcopy(policy), reward_funcs=trl_reward,
                              args=trl_args(GRPOConfig, out, loss_type=loss_type,
                                            use_bias_correction_kl=bias_correction),
                              train_dataset=Dataset.from_list([{"prompt": p} for p in PROMPTS]),
                              processing_class=tokenizer)
        trl_numbers = trl_step(trainer, sampled, monkeypatch, with_logprobs=True)
    check_equal(ours, advantages, *trl_numbers)


@pytest.mark.parametrize("normalize", [False, True])
def test_rloo_equals_trl_rloo(tokenizer, models, monkeypatch, normalize):
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    from datasets import Dataset
    from trl import RLOOConfig, RLOOTrainer

    config = rloo.Config(normalize_advantages=normalize, **COMMON)
    policy, reference = models
    ours, sampled, advantages = our_step(rloo, "leave_one_out_advantages", copy.deepcopy(policy), reference, tokenizer,
                                         config, monkeypatch)
    with tempfile.TemporaryDirectory() as out:
        trainer = RLOOTrainer(model=copy.deepcopy(policy), reward_funcs=trl_reward,
                              args=trl_args(RLOOConfig, out, normalize_advantages=normalize),
                              train_dataset=Dataset.from_list([{"prompt": p} for p in PROMPTS]),
                              processing_class=tokenizer)
        trl_numbers = trl_step(trainer, sampled, monkeypatch, with_logprobs=False)
    check_equal(ours, advantages, *trl_numbers)
