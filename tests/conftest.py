"""Fixtures shared by the whole suite, built once per session (the expensive ones: experts, demonstrations,
tiny language models). A test that mutates what a fixture returns must copy it first."""

from __future__ import annotations

import pytest

# -- gymnasium: experts and demonstrations -------------------------------------------------------

# -- language models: tiny models and tokenizers ---------------------------------------------------
