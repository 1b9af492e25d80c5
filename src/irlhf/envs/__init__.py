"""Sources of behaviour: tabular MDPs (``irlhf.envs.tabular``) and gymnasium helpers."""
