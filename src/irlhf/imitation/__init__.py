"""Imitation learning from demonstrations: behaviour cloning (``bc``), DAgger (``dagger``) and SQIL (``sqil``).

Import the modules directly (``from irlhf.imitation import bc, dagger, sqil``); nothing is imported
eagerly so that ``irlhf --help`` stays free of torch.
"""
