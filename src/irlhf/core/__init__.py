"""Shared core: errors, validated configs, seeding, run directories."""

from irlhf.core.errors import IrlhfError, ValidationError
from irlhf.core.seeding import as_generator

__all__ = ["IrlhfError", "ValidationError", "as_generator"]
