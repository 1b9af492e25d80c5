"""pytest's filterwarnings (pyproject.toml): a warning issued by irlhf's own code or its tests is an error,
while third-party warnings keep their default handling."""

import re
import warnings

import pytest


def action_for(module: str, category: type[Warning] = UserWarning, message: str = "a warning") -> str:
    """The action the active filters take on a warning issued from ``module`` (CPython's matching rule:
    the first filter whose message, category and module regexes match; the module regex anchors at the start)."""
    for action, msg, cat, mod, lineno in warnings.filters:
        if ((msg is None or msg.match(message)) and issubclass(category, cat)
                and (mod is None or mod.match(module)) and lineno == 0):
            return action
    return warnings.defaultaction


@pytest.mark.parametrize("module", ["irlhf", "irlhf.irl.adversarial", "irlhf.envs.tabular", "tests.llm.test_dpo"])
def test_our_warnings_are_errors(module):
    assert action_for(module) == "error"
    assert action_for(module, DeprecationWarning) == "error"


@pytest.mark.parametrize("module", ["gymnasium.envs.registration", "stable_baselines3.ppo.ppo",
                                    "transformers.modeling_utils", "torch.nn.modules.module", "irlhfx", "testsuite"])
def test_third_party_warnings_are_not_errors(module):
    assert action_for(module) != "error"


def test_a_warning_from_irlhf_raises():
    with pytest.raises(UserWarning, match=re.escape("from irlhf")):
        warnings.warn_explicit("from irlhf", UserWarning, "adversarial.py", 1, module="irlhf.irl.adversarial")


def test_resource_warnings_keep_pythons_default():
    assert action_for("tests.data.test_trajectory_io", ResourceWarning) == "ignore"
