"""irlhf: learning behaviour from people (imitation, inverse RL, preferences, RLHF)."""

__version__ = "0.1.0"
