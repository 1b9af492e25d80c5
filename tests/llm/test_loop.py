"""What the LM trainers share (irlhf.llm.loop): global batches, shards and global means (N processes = one),
the declared Config field types with their messages, and the one finiteness check per step."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from irlhf.core.errors import ValidationError
from irlhf.llm import dpo, ppo, reward, sft
from irlhf.llm.loop import Runtime, check_finite_loss, global_batches, global_mean, shard
from irlhf.llm.tokenize import TokenizeOptions

torch.set_num_threads(1)


def test_global_batches_are_seeded_permutations_per_epoch():
    batches = list(global_batches(5, 2, epochs=2, seed=7))
    assert [len(b) for b in batches] == [2, 2, 1, 2, 2, 1]
    for epoch in (batches[:3], batches[3:]):
        assert sorted(np.concatenate(epoch).tolist()) == [0, 1, 2, 3, 4]
    assert all(np.array_equal(a, b) for a, b in zip(batches, global_batches(5, 2, epochs=2, seed=7)))
    assert [len(b) for b in global_batches(5, 2, epochs=1, seed=0, drop_last=True)] == [2, 2]
    with pytest.raises(ValidationError, match="no training rows"):
        next(global_batches(0, 2, epochs=1, seed=0))


@pytest.mark.parametrize("global_rows", [[4, 0, 3, 1, 2], [3]])  # uneven shards; one rank without rows
def test_shards_with_global_means_average_to_the_one_process_gradient(global_rows):
    """DDP averages the ranks' gradients: with each rank backpropagating global_mean(sum of its rows' losses),
    that average is the gradient of the mean loss over the global batch, as in one process."""
    torch.manual_seed(0)
    x, y = torch.randn(5, 3), torch.randn(5)
    weight = torch.randn(3, requires_grad=True)

    def grad(rows: np.ndarray, rt: Runtime) -> torch.Tensor:
        weight.grad = None
        index = torch.as_tensor(rows, dtype=torch.long)
        global_mean(((x[index] @ weight - y[index]) ** 2).sum(), len(global_rows), rt).backward()
        return weight.grad.clone()

    batch = np.array(global_rows)
    one = grad(batch, Runtime(None, torch.device("cpu")))
    ranks = [Runtime(None, torch.device("cpu"), rank=r, world=2) for r in range(2)]
    assert sorted(np.concatenate([shard(batch, rt) for rt in ranks]).tolist()) == sorted(global_rows)
    averaged = sum(grad(shard(batch, rt), rt) for rt in ranks) / 2
    torch.testing.assert_close(averaged, one)


@pytest.mark.parametrize("make, message", [
    (lambda: dpo.Config(device=0), "device=0: expected None or a device name such as 'cpu' or 'cuda'"),
    (lambda: sft.Config(add_bos="yes"), "add_bos='yes': expected one of ['auto', True, False]"),
    (lambda: reward.Config(max_length=1), "max_length=1: expected >= 2 (a prompt token and a completion token)"),
    (lambda: dpo.Config(max_steps=0), "max_steps=0: expected >= 1"),
    (lambda: sft.Config(max_grad_norm=0.0), "max_grad_norm=0.0: expected > 0"),
    (lambda: reward.Config(lr_schedule="cosine"), "lr_schedule='cosine': expected one of ['constant', 'linear']"),
    (lambda: ppo.Config(gamma=1.5), "gamma=1.5: expected <= 1"),
    (lambda: ppo.Config(batch_size=4, mini_batch_size=8), "mini_batch_size=8: expected <= batch_size=4"),
    (lambda: TokenizeOptions(max_prompt_length=0), "max_prompt_length=0: expected >= 1"),
    (lambda: TokenizeOptions(add_eos=None), "add_eos=None: expected True or False"),
])
def test_declared_fields_reject_bad_values_with_the_field_and_value(make, message):
    with pytest.raises(ValidationError, match=re.escape(message)):
        make()


def test_optional_fields_accept_none_and_json_values():
    config = sft.Config(max_steps=None, max_grad_norm=None, max_length=None, device="cpu")
    assert config.max_steps is None and config.device == "cpu"
    assert dpo.Config.from_dict({"max_grad_norm": 1, "add_bos": False}).add_bos is False


def test_check_finite_loss_names_the_step():
    check_finite_loss(torch.tensor(0.5), step=3)
    with pytest.raises(ValidationError, match="step 3: the loss is inf; lower the learning rate"):
        check_finite_loss(torch.tensor(float("inf")), step=3)


def test_a_saved_checkpoint_has_the_usual_modes(tmp_path, model, tokenizer):
    """Written in a temp directory and moved into place, it still gets what a plain mkdir / open would."""
    import os
    import stat

    from irlhf.llm.loop import save_checkpoint

    umask = os.umask(0)
    os.umask(umask)
    saved = save_checkpoint(model, tokenizer, tmp_path / "final")
    assert stat.S_IMODE(saved.stat().st_mode) == 0o777 & ~umask
    assert {stat.S_IMODE(p.stat().st_mode) for p in saved.iterdir()} == {0o666 & ~umask}
