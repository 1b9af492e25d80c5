"""Inverse RL. Tabular with known dynamics: apprenticeship, mmp, maxent, deep_maxent.

Import the algorithm modules directly (``from irlhf.irl import maxent``); this package imports
nothing eagerly so that ``irlhf --help`` stays free of torch.
"""
