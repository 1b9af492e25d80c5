"""``irlhf.report.artifacts``: safetensors files from numpy arrays, torch tensors and module weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file as load_numpy
from safetensors.torch import load_file as load_torch

from irlhf.core.errors import IrlhfError
from irlhf.report.artifacts import save_arrays, save_tensors, state_dict_tensors


def test_state_dict_tensors_are_prefixed_detached_copies():
    net = torch.nn.Linear(3, 2)
    tensors = state_dict_tensors(net, "features.")
    assert set(tensors) == {"features.weight", "features.bias"}
    assert not tensors["features.weight"].requires_grad
    tensors["features.weight"].zero_()
    assert net.weight.abs().sum() > 0  # a copy, not a view of the module's weights


def test_save_tensors_and_arrays_round_trip_with_no_temp_files(tmp_path):
    net = torch.nn.Linear(3, 2)
    save_tensors(tmp_path / "net.safetensors", state_dict_tensors(net))
    loaded = load_torch(tmp_path / "net.safetensors")
    assert torch.equal(loaded["weight"], net.weight.detach()) and torch.equal(loaded["bias"], net.bias.detach())
    save_arrays(tmp_path / "w.safetensors", {"0.weight": np.arange(6.0).reshape(2, 3).T, 1: [1.0, 2.0]})
    arrays = load_numpy(tmp_path / "w.safetensors")
    np.testing.assert_array_equal(arrays["0.weight"], np.arange(6.0).reshape(2, 3).T)
    np.testing.assert_array_equal(arrays["1"], [1.0, 2.0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.safetensors", "w.safetensors"]


def test_save_tensors_rejects_non_tensors(tmp_path):
    with pytest.raises(IrlhfError, match=r"tensors\['w'\]=array.*expected a torch.Tensor"):
        save_tensors(tmp_path / "x.safetensors", {"w": np.zeros(20)})
    assert not list(tmp_path.iterdir())
