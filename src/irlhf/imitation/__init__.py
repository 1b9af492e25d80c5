"""Imitation learning from demonstrations: behaviour cloning (``bc``) and DAgger (``dagger``).

Import the modules directly (``from irlhf.imitation import bc, dagger``); nothing is imported
eagerly so that ``irlhf --help`` stays free of torch.
"""
