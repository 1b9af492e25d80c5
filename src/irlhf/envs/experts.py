"""Deprecated path, kept for one release: experts live in :mod:`irlhf.rl.experts` (layer 4, they load SB3
models). ``from irlhf.envs.experts import make_expert`` keeps working until then."""

from irlhf.rl.experts import (ALGOS, cache_dir, expert_path, list_experts, load_expert, load_model_file,  # noqa: F401
                              make_expert, train_command, train_expert)
