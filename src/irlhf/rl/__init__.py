"""Thin adapters over Stable-Baselines3 for the inner RL loop (``irlhf.rl.sb3``).

Nothing is imported here eagerly: ``from irlhf.rl import sb3`` pays for SB3 and torch only when asked.
"""
