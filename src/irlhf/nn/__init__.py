"""Neural-network building blocks shared by the learners (torch): MLP builders, policies, reward nets."""

from irlhf.nn.mlp import ACTIVATIONS, mlp
from irlhf.nn.policies import MLPPolicy, Policy, load_policy, save_policy

__all__ = ["ACTIVATIONS", "MLPPolicy", "Policy", "load_policy", "mlp", "save_policy"]
