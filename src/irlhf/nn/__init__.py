"""Neural-network building blocks shared by the learners (torch): MLP builders, observation encoders, policies."""

from irlhf.nn.encoders import ObsEncoder, encode
from irlhf.nn.mlp import ACTIVATIONS, mlp
from irlhf.nn.policies import MLPPolicy, Policy, load_policy, save_policy

__all__ = ["ACTIVATIONS", "MLPPolicy", "ObsEncoder", "Policy", "encode", "load_policy", "mlp", "save_policy"]
