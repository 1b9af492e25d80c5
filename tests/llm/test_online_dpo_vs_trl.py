"""Online DPO against TRL 1.16's OnlineDPOTrainer: the same model (moved off its reference), prompts, reward and the
SAME sampled completions (TRL's generation is patched to return the ones our step 0 sampled) give the same loss at
step 0 (1e-6) and the same gradient norm (1e-5 relative). TRL ranks the pairs with its own reward call and computes
its own log-probs and loss. ties="first" is TRL's rule for equal rewards. Runs where TRL is importable; skipped with
that reason otherwise."""

import copy
import importlib.util
import tempfile

import numpy as np
import pytest
import torch

from irlhf.llm import group_rollout, online_dpo

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("trl") is None,
    reason="TRL not installed (pip install trl): the comparison with its trainers is skipped")

PROMPTS = ["the film was", "the plot was", "the music was", "i loved the"]
MAX_NEW, BETA = 8, 0.1


def letters(completions):
    """Lowercase letters only (TRL decodes a completion alone, we decode it after its prompt: spaces may differ)."""
    return [sum(ch.isalpha() and ch.islower() for ch in c) / 8 for c in completions]


def test_online_dpo_equals_trl_online_dpo(tokenizer, make_model, tmp_path, monkeypatch):
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    from datasets import Dataset
    from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer

    reference = make_model(len(tokenizer)).eval()
    policy = copy.deepcopy(reference)
    torch.manual_seed(1)
    with torch.no_grad():  # off the reference, so the loss is not trivially log 2
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))

    sampled = []  # (prompt ids, completion ids with EOS) in our group order: prompt j's samples at rows 2j, 2j + 1
    sample = group_rollout.sample_completions

    def recording_sample(model, tokenizer, prompt_ids, config, *, seed=0):
        samples = sample(model, tokenizer, prompt_ids, config, seed=seed)
        for ids, row, mask in zip(prompt_ids, samples.input_ids, samples.completion_mask):
            sampled.append((list(ids), row[mask].tolist()))
        return samples

    config = online_dpo.Config(steps=1, batch_size=len(PROMPTS), beta=BETA, max_new_tokens=MAX_NEW, ties="first",
                               learning_rate=1e-3, max_grad_norm=None, temperature=1.0, progress=False, device="cpu")
    with monkeypatch.context() as patch:
        patch.setattr(group_rollout, "sample_completions", recording_sample)
        ours = online_dpo.train(copy.deepcopy(policy), tokenizer, PROMPTS,
                                lambda prompts, completions: np.array(letters(completions)), config,
                                ref_model=reference).history[0]
    assert {len(p) for p, _ in sampled} == {len(sampled[0][0])}  # equal prompt lengths: no padding inside TRL's

    def generate(model, prompts, images=None):  # TRL's layout: every prompt's first sample, then every second one
        rows = sampled[0::2] + sampled[1::2]
        width = max(len(c) for _, c in rows)
        completion_ids = torch.full((len(rows), width), tokenizer.pad_token_id)
        completion_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for k, (_, completion) in enumerate(rows):
            completion_ids[k, :len(completion)] = torch.tensor(completion)
            completion_mask[k, :len(completion)] = 1
        prompt_ids = torch.tensor([p for p, _ in rows])
        return prompt_ids, torch.ones_like(prompt_ids), completion_ids, completion_mask, None

    model = copy.deepcopy(policy)
    with tempfile.TemporaryDirectory() as out:
        args = OnlineDPOConfig(output_dir=out, beta=BETA, max_new_tokens=MAX_NEW, learning_rate=1e-3,
                               per_device_train_batch_size=len(PROMPTS), use_cpu=True, bf16=False,
                               report_to="none", save_strategy="no", disable_tqdm=True)
        trainer = OnlineDPOTrainer(model=model, ref_model=copy.deepcopy(reference),
                                   reward_funcs=lambda prompts, completions, **kw: letters(completions), args=args,
                                   train_dataset=Dataset.from_list([{"prompt": p} for p in PROMPTS]),
                                   processing_class=tokenizer)
        monkeypatch.setattr(trainer, "_generate", generate)
        trl_loss = float(trainer.training_step(trainer.model, {"prompt": PROMPTS}))
    trl_norm = float(torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None]))
    assert ours["loss"] == pytest.approx(trl_loss, abs=1e-6)
    assert ours["grad_norm"] == pytest.approx(trl_norm, rel=1e-5)
    assert abs(ours["loss"] - np.log(2) * (1 - ours["tie_fraction"])) > 1e-3  # pi != pi_ref: not the trivial value
