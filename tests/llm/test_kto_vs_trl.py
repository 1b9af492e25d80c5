"""KTO against TRL 1.16's KTOTrainer: the same model, reference, rows and batch give the same token sequences (the
rows and the mismatched rows of the KL estimate), the same loss at step 0 (1e-6) and the same gradient norm (1e-5
relative). Runs where TRL is importable (``pip install trl``); skipped with that reason otherwise."""

import copy
import importlib.util
import tempfile

import pytest
import torch

from irlhf.data.text import TextLabels
from irlhf.llm import kto
from irlhf.llm.loop import global_batches

pytestmark = pytest.mark.skipif(importlib.util.find_spec("trl") is None,
                                reason="TRL not installed (pip install trl): the comparison with its KTOTrainer is "
                                "skipped")

ROWS = [{"prompt": p, "completion": c, "label": y} for p, c, y in [
    ("the film was", " great fun", True), ("the plot was", " awful and slow", False),
    ("the music was", " great", True), ("the acting was", " bad", False),
    ("the film was", " dull dull", False), ("the plot was", " loved it", True)]]
# one batch of every row; TRL's add_bos and ours agree ("auto": this tokenizer adds no BOS, nor does TRL's KTO)
CONFIG = kto.Config(beta=0.1, batch_size=len(ROWS), max_steps=1, max_length=32, max_grad_norm=None, progress=False,
                    device="cpu", learning_rate=1e-3, log_every=1)


@pytest.fixture
def models(tokenizer, make_model):
    """(reference, policy): the reference moved away from the initial weights, the policy moved away from it."""
    ref = make_model(len(tokenizer))
    torch.manual_seed(1)
    with torch.no_grad():  # away from the initial weights and from each other: r != 0 and z0 > 0
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))
        policy = copy.deepcopy(ref)
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return ref, policy


def batch_order():
    """Our step-0 batch order (a seeded permutation); TRL samples sequentially, so it gets the rows in this order
    and then rotates the completions within the batch exactly as ours do."""
    return [int(i) for i in next(global_batches(len(ROWS), CONFIG.batch_size, 1, CONFIG.seed))]


def same_sequences(tokenizer, trl_batch):
    """TRL's rows and mismatched (KL) rows are ours, in order, token for token, with the same completion start."""
    items, _, _ = kto.encode(tokenizer, TextLabels.from_rows(ROWS), CONFIG, "data")
    order = batch_order()
    rows = [items[i] for i in order]
    partners = kto.mismatched_rows(order)
    kl_rows = [kto.mismatched(items[i], items[j], CONFIG.max_length) for i, j in zip(order, partners)]
    for prefix, ours in (("", rows), ("KL_", kl_rows)):
        for k, (ids, mask, completion) in enumerate(zip(trl_batch[f"{prefix}input_ids"],
                                                        trl_batch[f"{prefix}attention_mask"],
                                                        trl_batch[f"{prefix}completion_mask"])):
            keep = mask.bool()
            assert tuple(ids[keep].tolist()) == ours[k].input_ids, (prefix, k)
            assert int((completion[keep] == 0).sum()) == ours[k].n_prompt, (prefix, k)


def test_kto_equals_trl_kto(tokenizer, models, monkeypatch):
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    from datasets import Dataset
    from trl import KTOConfig, KTOTrainer

    ref, policy = models
    model = copy.deepcopy(policy)
    with tempfile.TemporaryDirectory() as out:
        args = KTOConfig(output_dir=out, beta=0.1, desirable_weight=1.0, undesirable_weight=1.0, max_length=32,
                         per_device_train_batch_size=len(ROWS), use_cpu=True, bf16=False,
                         report_to="none", save_strategy="no", disable_tqdm=True)
        trainer = KTOTrainer(model=model, ref_model=copy.deepcopy(ref), args=args, processing_class=tokenizer,
                             train_dataset=Dataset.from_list([ROWS[i] for i in batch_order()]))
        batch = next(iter(trainer.get_train_dataloader()))
        model.train()
        loss = trainer.compute_loss(model, batch)
        loss.backward()
        trl_loss, trl_kl = float(loss.detach()), trainer._metrics["train"]["kl"][-1]
        trl_norm = float(torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None]))
    same_sequences(tokenizer, batch)
    first = kto.train(copy.deepcopy(policy), tokenizer, TextLabels.from_rows(ROWS), CONFIG,
                      ref_model=copy.deepcopy(ref)).history[0]
    print(f"ours loss {first['loss']!r} kl {first['kl']!r} grad norm {first['grad_norm']!r}; "
          f"TRL loss {trl_loss!r} kl {trl_kl!r} grad norm {trl_norm!r}")
    assert first["kl"] > 0  # the reference point is not clamped here: the KL path is compared too
    assert first["kl"] == pytest.approx(trl_kl, abs=1e-6)
    assert first["loss"] == pytest.approx(trl_loss, abs=1e-6)
    assert first["grad_norm"] == pytest.approx(trl_norm, rel=1e-5)
