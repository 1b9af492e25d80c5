"""Decode-time kernels (irlhf.llm.decode_kernels): the swapped modules (prepacked linear layers, fused GELU)
compute what the model's own do to fp32 rounding, are restored after the block (also when it raises), leave
alone what they must not touch, and sampling with them draws the same tokens as without."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from irlhf.llm import decode_kernels, rollout

from .test_sampling import PROMPTS, eos_prone, rows_of

needs_onednn = pytest.mark.skipif(not decode_kernels.available(), reason="this torch build has no oneDNN linear")


def swappable(model, kind: str) -> list[nn.Module]:
    if kind == "gelu":
        return [m for m in model.modules() if decode_kernels._from_transformers(m, "NewGELUActivation")]
    return [m for m in model.modules() if decode_kernels._weight_out_in(m) is not None]


@needs_onednn
def test_gpt2_forward_with_decode_kernels_equals_its_own(model, tokenizer):
    """Conv1D (attention, MLP), the tied Linear head and gelu_new: same logits to fp32 rounding, 1 and 5 rows."""
    model.eval()
    assert len(swappable(model, "linear")) == 4 * model.config.n_layer + 1  # c_attn, c_proj, c_fc, mlp c_proj; head
    assert len(swappable(model, "gelu")) == model.config.n_layer
    for rows in (1, 5):
        ids = torch.randint(0, len(tokenizer), (rows, 7), generator=torch.Generator().manual_seed(rows))
        with torch.no_grad():
            plain = model(input_ids=ids).logits
            with decode_kernels.decode_kernels(model, rows, min_elements=0) as swapped:
                fast = model(input_ids=ids).logits
        assert swapped == 5 * model.config.n_layer + 1
        assert torch.allclose(fast, plain, atol=2e-5, rtol=1e-5)


def test_fused_gelu_is_gelu_new():
    from transformers.activations import NewGELUActivation

    x = torch.linspace(-6, 6, 1001)
    assert torch.allclose(decode_kernels._fused_gelu(x), NewGELUActivation()(x), atol=1e-6, rtol=0)


@needs_onednn
def test_forwards_restored_after_the_block_and_after_an_error(model):
    count = len(swappable(model, "linear")) + len(swappable(model, "gelu"))
    with pytest.raises(RuntimeError, match="inside"):
        with decode_kernels.decode_kernels(model, 4, min_elements=0) as swapped:
            assert swapped == count and sum("forward" in m.__dict__ for m in model.modules()) == count
            raise RuntimeError("inside")
    assert not any("forward" in m.__dict__ for m in model.modules())


@needs_onednn
def test_only_layers_of_min_elements_are_packed(model):
    sizes = [m.weight.numel() for m in swappable(model, "linear")]
    threshold = sorted(sizes)[len(sizes) // 2]
    with decode_kernels.decode_kernels(model, 4, min_elements=threshold) as swapped:
        assert swapped - len(swappable(model, "gelu")) == sum(size >= threshold for size in sizes) < len(sizes)


@needs_onednn
def test_layers_it_must_not_touch_are_left_alone():
    """A subclass of Linear (LoRA, quantised layers), a layer whose forward is already replaced on the instance
    (accelerate's hooks), a non-fp32 layer: untouched; a plain fp32 Linear is swapped and still exact."""
    class Sub(nn.Linear):
        pass

    hooked = nn.Linear(3, 2)
    hooked.forward = lambda x: torch.zeros(x.shape[0], 2)
    net = nn.Sequential(nn.Linear(3, 4), Sub(4, 3), hooked, nn.Linear(2, 2).double())
    with decode_kernels.decode_kernels(net, 2, min_elements=0) as swapped:
        assert swapped == 1
        x = torch.randn(2, 3)
        assert torch.allclose(net[0](x), nn.functional.linear(x, net[0].weight, net[0].bias), atol=1e-6)
        assert "forward" not in net[1].__dict__ and "forward" not in net[3].__dict__
    assert torch.equal(net[2](torch.ones(1, 3)), torch.zeros(1, 2))  # its own replacement survives


def test_only_the_gelu_where_onednn_is_unavailable(model, monkeypatch):
    monkeypatch.setattr(decode_kernels, "available", lambda: False)
    with decode_kernels.decode_kernels(model, 4, min_elements=0) as swapped:
        assert swapped == len(swappable(model, "gelu"))
        assert not any("forward" in m.__dict__ for m in swappable(model, "linear"))


@needs_onednn
def test_sampling_with_decode_kernels_draws_the_same_tokens(model, tokenizer, monkeypatch):
    eos = tokenizer.eos_token_id
    model = eos_prone(model, eos)
    rows = rows_of(tokenizer, PROMPTS)
    opened = []
    original = decode_kernels.decode_kernels
    monkeypatch.setattr(rollout, "decode_kernels", lambda *args: opened.append(args[1]) or original(*args))
    runs = []
    for packed in (True, False):
        with torch.random.fork_rng():
            torch.manual_seed(5)
            runs.append(rollout._sample_tokens(model, rows, 0.7, 10, eos, 0, with_logps=True, packed=packed))
    assert opened == [len(rows)]  # one block, around the decoding steps only
    assert torch.equal(runs[0][0], runs[1][0])
    assert torch.allclose(runs[0][1], runs[1][1], atol=1e-5, rtol=0)
