"""Inverse RL. Tabular, known dynamics: maxent (and, as they land, deep_maxent, apprenticeship, mmp)."""
