"""Feedback data: demonstrations (``Trajectory``, ``Transitions``) and their files.

``load_demos`` / ``save_demos`` read and write every format (.npz, .parquet, .jsonl, a Hugging Face
``save_to_disk`` directory); the Hugging Face helpers live in ``irlhf.data.hf`` and import ``datasets``
(the ``hf`` extra) only when called.
"""

from irlhf.data.hf import from_hf_dataset, load_demos, load_hf, save_demos, save_hf, to_hf_dataset
from irlhf.data.io import load_trajectories, save_trajectories
from irlhf.data.types import Trajectory, Transitions, flatten_trajectories

__all__ = [
    "Trajectory",
    "Transitions",
    "flatten_trajectories",
    "from_hf_dataset",
    "load_demos",
    "load_hf",
    "load_trajectories",
    "save_demos",
    "save_hf",
    "save_trajectories",
    "to_hf_dataset",
]
