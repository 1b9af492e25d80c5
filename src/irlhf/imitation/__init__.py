"""Imitation learning from demonstrations: behaviour cloning (``bc``)."""
