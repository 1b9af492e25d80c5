"""Inverse RL. Tabular with known dynamics: apprenticeship, mmp, maxent, deep_maxent. Sample-based on a
gymnasium environment: gcl (guided cost learning), gail and airl (adversarial, on ``adversarial``'s loop),
iq_learn (inverse soft-Q, offline or online), density (a kernel-density reward, then RL), trex (a reward from
ranked demonstrations, then RL) and drex (T-REX on automatically ranked noise-injected BC rollouts).
``irlhf irl ALGORITHM`` runs any of them from the command line
(both: ``irlhf.jobs.irl``).

Import the algorithm modules directly (``from irlhf.irl import maxent``); this package imports
nothing eagerly so that ``irlhf --help`` stays free of torch.
"""
