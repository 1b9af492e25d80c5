"""Neural-network building blocks shared by the learners (torch): MLP builders, reward nets."""

from irlhf.nn.mlp import ACTIVATIONS, mlp

__all__ = ["ACTIVATIONS", "mlp"]
