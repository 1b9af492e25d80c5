import pytest
import torch

from irlhf.core.errors import IrlhfError
from irlhf.nn import mlp


def test_layers_shapes_and_activation():
    net = mlp(4, (8, 6), 2, "tanh")
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(4, 8), (8, 6), (6, 2)]
    assert sum(isinstance(m, torch.nn.Tanh) for m in net) == 2
    assert not isinstance(net[-1], torch.nn.Tanh)  # no activation on the output
    assert net(torch.zeros(5, 4)).shape == (5, 2)


def test_no_hidden_layers_is_linear():
    net = mlp(3, (), 1)
    assert len(net) == 1 and isinstance(net[0], torch.nn.Linear)


def test_same_seed_same_weights_and_global_rng_untouched():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = mlp(5, (16,), 1, seed=7)
    after = torch.rand(3)  # building with a seed must not advance the global stream
    b = mlp(5, (16,), 1, seed=7)
    c = mlp(5, (16,), 1, seed=8)
    assert torch.equal(after, expected)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    assert not torch.equal(a[0].weight, c[0].weight)


def test_dtype():
    assert mlp(2, (3,), 1, dtype="float64")[0].weight.dtype == torch.float64
    assert mlp(2, (3,), 1, dtype=torch.float32)[0].weight.dtype == torch.float32


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(in_dim=0), "in_dim"), (dict(out_dim=1.5), "out_dim"), (dict(hidden_sizes=(4, 0)), r"hidden_sizes\[1\]"),
     (dict(hidden_sizes="64"), "hidden_sizes"), (dict(activation="swish"), "activation"),
     (dict(dtype="float16"), "dtype"), (dict(seed=-1), "seed")],
)
def test_bad_arguments_raise(kwargs, match):
    args = dict(in_dim=2, hidden_sizes=(4,), out_dim=1) | kwargs
    extra = {k: args.pop(k) for k in ("activation", "dtype", "seed") if k in args}
    with pytest.raises(IrlhfError, match=match):
        mlp(args["in_dim"], args["hidden_sizes"], args["out_dim"], **extra)
