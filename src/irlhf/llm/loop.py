"""What every LM trainer here shares: one or several processes, global batches, optimiser, checkpoints.

Multi-process: run a script under ``accelerate launch --num_processes N`` and the trainers use ``accelerate``'s
``Accelerator`` (DDP, gradients averaged across processes); a plain ``python``
run uses one process and needs no ``accelerate``. Every process draws the same *global* batch of row indices
(same seed) and takes its contiguous share, and each loss is a mean over the global batch (``global_mean``),
so N processes give the same losses and updates as one process with the same global batch
(``tests/llm/test_accelerate.py``). Without GPUs, ``ACCELERATE_USE_CPU=true accelerate launch --multi_gpu
--num_processes N script.py`` starts N gloo CPU processes (accelerate 1.15's ``--cpu`` flag starts only one).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch

from irlhf.core.config import Check, Positive, PositiveInt
from irlhf.core.errors import ValidationError
from irlhf.data.hf import write_directory


@dataclasses.dataclass
class Runtime:
    """The processes a trainer runs on: ``rank`` of ``world``; ``accelerator`` is None for a plain run."""

    accelerator: Any | None
    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def prepare(self, model: Any, optimizer: Any) -> tuple[Any, Any]:
        """Wrap for multi-process training (DDP under accelerate); a no-op otherwise."""
        if self.accelerator is None:
            return model.to(self.device), optimizer
        return self.accelerator.prepare(model, optimizer)

    def backward(self, loss: torch.Tensor) -> None:
        if self.accelerator is None:
            loss.backward()
        else:
            self.accelerator.backward(loss)

    def clip_grad_norm(self, parameters: Any, max_norm: float) -> float:
        if self.accelerator is None:
            return float(torch.nn.utils.clip_grad_norm_(parameters, max_norm))
        return float(self.accelerator.clip_grad_norm_(parameters, max_norm))

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """Sum over processes (a no-op for one); the result is detached."""
        value = value.detach()
        if self.accelerator is None or self.world == 1:
            return value
        return self.accelerator.reduce(value.to(self.device), reduction="sum")

    def unwrap(self, model: Any) -> Any:
        return model if self.accelerator is None else self.accelerator.unwrap_model(model)


# -- field types the LM trainers' Configs share (with irlhf.llm.tokenize's MaxLength, PromptLength, AddBos) --
def _is_device_name(value: object) -> bool:
    return isinstance(value, str)


Device = Annotated[str, Check(_is_device_name, "None or a device name such as 'cpu' or 'cuda'")] | None
LRSchedule = Literal["constant", "linear"]  # "linear" decays to 0 over the run
MaxSteps = PositiveInt | None  # None: the epochs decide
MaxGradNorm = Positive | None  # None: no clipping


def is_peft(model: Any) -> bool:
    """True for a peft (LoRA) model: its adapters can be disabled to get the base model (pi_ref)."""
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")


def launched_distributed() -> bool:
    """True when started by ``accelerate launch`` / ``torchrun`` with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def make_runtime(device: str | None = None) -> Runtime:
    """One process on ``device`` (default: cuda if available, else cpu), or accelerate's processes if launched so."""
    if launched_distributed():
        try:
            from accelerate import Accelerator  # why: optional (llm extra); only multi-process runs need it
        except ImportError:
            raise ValidationError("launched with several processes but accelerate is not installed; "
                                  "pip install 'irlhf[llm]'") from None
        accelerator = Accelerator()
        return Runtime(accelerator, accelerator.device, accelerator.process_index, accelerator.num_processes)
    name = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return Runtime(None, torch.device(name))
    except RuntimeError as exc:
        raise ValidationError(f"device={device!r}: {exc}") from None


def global_batches(n_rows: int, batch_size: int, epochs: int, seed: int, drop_last: bool = False
                   ) -> Iterator[np.ndarray]:
    """Row indices of each global batch: a fresh permutation per epoch (seeded by seed and epoch)."""
    if n_rows < 1:
        raise ValidationError("no training rows")
    for epoch in range(epochs):
        order = np.random.default_rng([seed, epoch]).permutation(n_rows)
        for start in range(0, n_rows, batch_size):
            batch = order[start:start + batch_size]
            if drop_last and len(batch) < batch_size:
                break
            yield batch


def shard(batch: np.ndarray, runtime: Runtime) -> np.ndarray:
    """This process's contiguous share of a global batch (rank r of w gets the r-th of w near-equal parts)."""
    return np.array_split(batch, runtime.world)[runtime.rank]


def global_mean(local_sum: torch.Tensor, global_size: int, runtime: Runtime) -> torch.Tensor:
    """The loss to backpropagate so that DDP's gradient average equals the gradient of the mean over the global
    batch: local_sum * world / global_size (exact for uneven shards too)."""
    return local_sum * (runtime.world / global_size)


def disable_dropout(model: Any) -> None:
    """Set every ``torch.nn.Dropout`` of ``model`` to p = 0, in place (as TRL's ``disable_dropout_in_model``): the
    policy then computes the same function in training as the reference does in eval mode."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


def adamw(model: Any, learning_rate: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters (LoRA adapters only, when the model has them). torch's default
    (foreach) kernel: the fused CPU kernel measured slower here (DPO tiny 114 vs 126 pairs/s) and saved no memory."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValidationError("the model has no trainable parameters")
    return torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Hide transformers' own progress bars and warnings (loading / writing weights) inside this block; restored
    after. Its load report (ANSI-coloured) lists e.g. a reward model's fresh score head: expected, not news."""
    from transformers.utils import logging as hf_logging  # why: optional (llm extra), slow to import

    was_enabled = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if was_enabled:
            hf_logging.enable_progress_bar()


def save_checkpoint(model: Any, tokenizer: Any, path: str | os.PathLike[str]) -> Path:
    """``save_pretrained`` (safetensors) of model and tokenizer into ``path``, written beside it and then moved
    into place, so an interrupted save never leaves a half-written checkpoint."""
    def write(tmp: Path) -> None:
        with quiet_transformers():
            model.save_pretrained(tmp, safe_serialization=True)
            if tokenizer is not None:
                tokenizer.save_pretrained(tmp)

    return write_directory(path, write)


def check_finite_loss(loss: torch.Tensor, step: int) -> None:
    """Stop with a clear message instead of training on a NaN/inf loss: the trainers' one finiteness check per
    optimiser step (one device sync; the losses themselves do not re-check their inputs)."""
    if not torch.isfinite(loss).all():
        # detached: float() of a tensor that requires grad warns
        raise ValidationError(f"step {step}: the loss is {float(loss.detach())}; lower the learning rate or "
                              "check the data")
