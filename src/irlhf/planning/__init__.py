"""Exact planning on tabular MDPs: value iteration (hard and soft) and occupancy measures."""

from irlhf.planning.occupancy import occupancy_measure
from irlhf.planning.value_iteration import soft_value_iteration, value_iteration

__all__ = ["occupancy_measure", "soft_value_iteration", "value_iteration"]
