"""Feedback data: demonstrations (``Trajectory``, ``Transitions``) and their files."""

from irlhf.data.io import load_trajectories, save_trajectories
from irlhf.data.types import Trajectory, Transitions, flatten_trajectories

__all__ = ["Trajectory", "Transitions", "flatten_trajectories", "load_trajectories", "save_trajectories"]
