"""SimPO and ORPO against TRL's trainers (CPOTrainer with loss_type="simpo", ORPOTrainer): the same model, data and
batch give the same token sequences, the same loss at step 0 (1e-6) and the same gradient norm (1e-5 relative).
Runs where TRL is importable (``pip install trl``); skipped with that reason otherwise."""

import copy
import importlib.util
import tempfile

import pytest
import torch

from irlhf.data.text import TextPairs
from irlhf.llm import dpo, orpo, pairwise, simpo

pytestmark = pytest.mark.skipif(importlib.util.find_spec("trl") is None,
                                reason="TRL not installed (pip install trl): the comparison with its trainers is skipped")

ROWS = [{"prompt": p, "chosen": c, "rejected": r} for p, c, r in [
    ("the film was", " great fun", " dull"), ("the plot was", " lovely", " awful and slow"),
    ("the music was", " great", " dull dull"), ("the acting was", " loved it", " bad")]]


def trl_step(trainer, model):
    """TRL's loss on its first batch (all rows) and the gradient norm it leaves."""
    batch = next(iter(trainer.get_train_dataloader()))
    model.train()
    loss, _ = trainer.get_batch_loss_metrics(model, batch)
    loss.backward()
    norm = torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])
    return batch, float(loss.detach()), float(norm)


def same_sequences(tokenizer, config, trl_batch):
    """Our chosen / rejected rows equal TRL's, token for token, with the same completion positions."""
    chosen, rejected, _ = pairwise.encode(tokenizer, TextPairs.from_rows(ROWS), config, "data")
    ours = {tuple(e.input_ids): e.n_prompt for e in chosen + rejected}
    for side in ("chosen", "rejected"):
        for ids, mask, labels in zip(trl_batch[f"{side}_input_ids"], trl_batch[f"{side}_attention_mask"],
                                     trl_batch[f"{side}_labels"]):
            seq = tuple(ids[mask.bool()].tolist())
            assert seq in ours, seq
            assert ours[seq] == int((labels[mask.bool()] == -100).sum())  # prompt tokens masked alike


def our_step(module, model, tokenizer, config):
    result = module.train(model, tokenizer, TextPairs.from_rows(ROWS), config)
    return result.history[0]["loss"], result.history[0]["grad_norm"]


# TRL's CPO and ORPO put the tokenizer's BOS before every prompt: add_bos=True asks the same of ours
COMMON = dict(add_bos=True, batch_size=4, max_steps=1, max_length=32, max_grad_norm=None, progress=False, device="cpu",
              learning_rate=1e-3, log_every=1)


@pytest.fixture
def moved_model(tokenizer, make_model):
    model = make_model(len(tokenizer))
    torch.manual_seed(1)
    with torch.no_grad():  # away from the initial weights, so the losses are not at a symmetric point
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def test_simpo_equals_trl_cpo_with_simpo_loss(tokenizer, moved_model, monkeypatch):
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    from datasets import Dataset
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    model = copy.deepcopy(moved_model)
    with tempfile.TemporaryDirectory() as out:
        args = CPOConfig(output_dir=out, loss_type="simpo", cpo_alpha=0.0, beta=2.0, simpo_gamma=0.5, max_length=32,
                         per_device_train_batch_size=4, use_cpu=True, report_to="none", save_strategy="no",
                         disable_tqdm=True)
        trainer = CPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(ROWS), processing_class=tokenizer)
        batch, trl_loss, trl_norm = trl_step(trainer, model)
    config = simpo.Config(beta=2.0, gamma=0.5, **COMMON)
    same_sequences(tokenizer, config, batch)
    loss, norm = our_step(simpo, copy.deepcopy(moved_model), tokenizer, config)
    assert loss == pytest.approx(trl_loss, abs=1e-6)
    assert norm == pytest.approx(trl_norm, rel=1e-5)


def test_orpo_equals_trl_orpo(tokenizer, moved_model, monkeypatch):
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    from datasets import Dataset
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    model = copy.deepcopy(moved_model)
    with tempfile.TemporaryDirectory() as out:
        args = ORPOConfig(output_dir=out, beta=0.1, max_length=32, per_device_train_batch_size=4, use_cpu=True,
                          report_to="none", save_strategy="no", disable_tqdm=True)
        trainer = ORPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(ROWS),
                              processing_class=tokenizer)
        batch, trl_loss, trl_norm = trl_step(trainer, model)
    config = orpo.Config(lam=0.1, **COMMON)
    same_sequences(tokenizer, config, batch)
    loss, norm = our_step(orpo, copy.deepcopy(moved_model), tokenizer, config)
    assert loss == pytest.approx(trl_loss, abs=1e-6)
    assert norm == pytest.approx(trl_norm, rel=1e-5)


@pytest.mark.parametrize("loss_type, eps", [("sigmoid", 0.0), ("robust", 0.1), ("hinge", 0.0)])
def test_dpo_loss_types_equal_trl_dpo(tokenizer, make_model, monkeypatch, loss_type, eps):
    """DPO against TRL's DPOTrainer with its reference the unmoved model: the same loss and gradient norm at step 0
    for each loss type both define alike (TRL's "ipo" divides each log-ratio by its completion's length; ours is the
    paper's, on summed log-probs: ``dpo.loss``'s docstring; TRL 1.16's "sigmoid" ignores label smoothing)."""
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    reference = make_model(len(tokenizer)).eval()
    policy = copy.deepcopy(reference)
    torch.manual_seed(1)
    with torch.no_grad():  # off the reference, so the loss is not at its symmetric point
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model = copy.deepcopy(policy)
    with tempfile.TemporaryDirectory() as out:
        args = DPOConfig(output_dir=out, beta=0.5, loss_type=[loss_type], label_smoothing=eps, max_length=32,
                         per_device_train_batch_size=4, use_cpu=True, bf16=False, report_to="none",
                         save_strategy="no", disable_tqdm=True)
        trainer = DPOTrainer(model=model, ref_model=copy.deepcopy(reference), args=args,
                             train_dataset=Dataset.from_list(ROWS), processing_class=tokenizer)
        batch = next(iter(trainer.get_train_dataloader()))
        model.train()
        trl_loss = trainer.compute_loss(model, batch)
        trl_loss.backward()
    trl_norm = float(torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None]))
    config = dpo.Config(beta=0.5, loss_type=loss_type, label_smoothing=eps,
                        **{**COMMON, "add_bos": "auto"})  # TRL's DPO adds BOS only as the tokenizer does
    result = dpo.train(copy.deepcopy(policy), tokenizer, TextPairs.from_rows(ROWS), config, ref_model=reference)
    assert result.history[0]["loss"] == pytest.approx(float(trl_loss.detach()), abs=1e-6)
    assert result.history[0]["grad_norm"] == pytest.approx(trl_norm, rel=1e-5)
