"""What every step of ``irlhf demo`` shares: its options (``DemoConfig``) and the run state the steps fill in
(``Demo``)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import numpy as np

from irlhf.core.config import BaseConfig, NonNegativeInt, PositiveInt, Range, Seed
from irlhf.core.rundir import RunDir
from irlhf.data.types import Trajectory
from irlhf.envs.tabular import TabularMDP
from irlhf.jobs._common import MAX_WORLD_SIZE
from irlhf.report import Report

JOB = "demo"
MAX_SIZE = MAX_WORLD_SIZE


@dataclasses.dataclass(frozen=True)
class DemoConfig(BaseConfig):
    """Options of ``irlhf demo`` (the --help of ``irlhf demo`` says what each does): the objectworld's size
    (size * size states), horizon H (expert horizon and demo length), n_demos, discount and seed (world layout and
    every sample), then one budget per later step: deep MaxEnt iterations, imitation_demos (BC episodes = DAgger
    rounds), gail_steps, iq_updates, preference_labels, dpo_prompts and lm_pretrain_steps."""

    size: Annotated[int, Range(2, MAX_SIZE)] = 32
    horizon: PositiveInt = 8
    n_demos: PositiveInt = 64
    discount: Annotated[float, Range(0, 1, low_open=True)] = 0.9
    seed: Seed = 0
    deep_iterations: NonNegativeInt = 200
    imitation_demos: PositiveInt = 2
    gail_steps: PositiveInt = 20_480
    iq_updates: PositiveInt = 2000
    preference_labels: PositiveInt = 150
    dpo_prompts: PositiveInt = 64
    lm_pretrain_steps: PositiveInt = 300

    def command(self) -> str:
        """The command line that reproduces this configuration."""
        return (f"irlhf demo --size {self.size} --horizon {self.horizon} --n-demos {self.n_demos} "
                f"--discount {self.discount:g} --deep-iters {self.deep_iterations} "
                f"--imitation-demos {self.imitation_demos} --gail-steps {self.gail_steps} "
                f"--iq-updates {self.iq_updates} --preference-labels {self.preference_labels} "
                f"--dpo-prompts {self.dpo_prompts} --lm-pretrain-steps {self.lm_pretrain_steps} --seed {self.seed}")


@dataclasses.dataclass
class Demo:
    """What the steps share: the inputs, the run directory and report, and what earlier steps made."""

    config: DemoConfig
    run: RunDir
    report: Report
    progress: bool = False  # the long steps show their learners' progress bars
    summary: list[str] = dataclasses.field(default_factory=list)  # lines of summary.txt
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)  # every step's metrics, flat
    timings: dict[str, float] = dataclasses.field(default_factory=dict)  # seconds per step
    mdp: TabularMDP | None = None
    pi: np.ndarray | None = None  # expert policy (H, S, A)
    occupancy: np.ndarray | None = None  # exact discounted state occupancy (S,)
    trajs: list[Trajectory] | None = None
    visitation: np.ndarray | None = None  # empirical discounted state visitation (S,)
    cartpole_demos: list[Trajectory] | None = None  # the GAIL / IQ-Learn steps' expert episodes
    language: dict[str, Any] | None = None  # the alignment step's pretrained LM, tokenizer, prompts and samples
