"""What every LM trainer here shares: one or several processes, global batches, optimiser, checkpoints.

Multi-process: run a script under ``accelerate launch --num_processes N`` and the trainers use ``accelerate``'s
``Accelerator`` (DDP, gradients averaged across processes); a plain ``python``
run uses one process and needs no ``accelerate``. Every process draws the same *global* batch of row indices
(same seed) and takes its contiguous share, and each loss is a mean over the global batch (``global_mean``),
so N processes give the same losses and updates as one process with the same global batch
(``tests/llm/test_accelerate.py``). Without GPUs, ``ACCELERATE_USE_CPU=true accelerate launch --multi_gpu
--num_processes N script.py`` starts N gloo CPU processes (accelerate 1.15's ``--cpu`` flag starts only one).

Resume: a trainer's checkpoints (``save_checkpoint`` with a ``trainer_state``) hold, beside the weights,
``trainer_state.pt``: the optimiser state, the step, the config, the history so far and torch's RNG state.
``read_resume`` checks such a checkpoint against a run's config (before any work); its ``Resume`` loads the
weights (after the reference is scored with the initial ones), and ``begin_run`` restores the optimiser and RNG
state and starts the run's ``MetricsLog`` (metrics.jsonl rewritten to hold the history up to that step).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch

from irlhf.core.config import Check, Positive, PositiveInt
from irlhf.core.errors import ValidationError
from irlhf.core.io import atomic_open
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

    def clip_grad_norm(self, parameters: Any, max_norm: float | None) -> float:
        """The gradients' total norm (before clipping), clipped to ``max_norm`` (None: only measured)."""
        if max_norm is None:
            max_norm = float("inf")  # a scale of exactly 1: the gradients stay as they are
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
    """AdamW over the trainable parameters (LoRA adapters only, when the model has them), with torch's fused kernel
    where every parameter allows it (floating point on CPU or CUDA): with torch 2.13 one step takes 1.2 vs 5.4 ms
    (4 x 128 GPT-2) and 15 vs 57 ms (8 x 512) against the default foreach kernel, 2 CPU threads."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValidationError("the model has no trainable parameters")
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay, fused=fused)


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


def save_checkpoint(model: Any, tokenizer: Any, path: str | os.PathLike[str],
                    state: dict[str, Any] | None = None) -> Path:
    """``save_pretrained`` (safetensors) of model and tokenizer into ``path``, written beside it and then moved
    into place, so an interrupted save never leaves a half-written checkpoint. ``state`` (``trainer_state``):
    also written there, as TRAINER_STATE, so a run can resume from the checkpoint (``read_resume``)."""
    def write(tmp: Path) -> None:
        with quiet_transformers():
            model.save_pretrained(tmp, safe_serialization=True)
            if tokenizer is not None:
                tokenizer.save_pretrained(tmp)
        if state is not None:
            torch.save(state, tmp / TRAINER_STATE)

    return write_directory(path, write)


# -- resuming a run from a checkpoint ---------------------------------------------------------------------
TRAINER_STATE = "trainer_state.pt"
# Config fields a resumed run may change: the run's length, how often it logs and saves, where it runs (a Config
# class may declare its own RESUMABLE_CHANGES: read_resume takes those)
RESUMABLE_CHANGES = ("max_steps", "epochs", "save_steps", "log_every", "progress", "device")


def trainer_name(config: Any) -> str:
    """The trainer a checkpoint belongs to: the qualified name of its Config's class, e.g. 'irlhf.llm.dpo.Config'."""
    return f"{type(config).__module__}.{type(config).__qualname__}"


def trainer_state(config: Any, step: int, optimizer: torch.optim.Optimizer, history: Sequence[dict[str, Any]],
                  device: torch.device) -> dict[str, Any]:
    """What a checkpoint holds beside the weights (``save_checkpoint``'s ``state``): "trainer" (``trainer_name``),
    "config" (``to_dict``), "step" (optimiser steps done), "optimizer" (its ``state_dict``), "history" (the rows
    logged up to this step) and "rng" (torch's CPU RNG state; "cuda": the CUDA device's, when ``device`` is one)."""
    return {"trainer": trainer_name(config), "config": config.to_dict(), "step": step,
            "optimizer": optimizer.state_dict(), "history": [dict(row) for row in history],
            "rng": {"cpu": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}}


def _first_line(exc: BaseException) -> str:
    """``exc``'s message on one line: its first line (with the next when it ends in ':', as torch's load errors)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    return " ".join(lines[:2]) if lines[0].endswith(":") and len(lines) > 1 else lines[0]


@dataclasses.dataclass
class Resume:
    """A checkpoint to continue a run from (``read_resume``): its directory, the optimiser steps done, the history
    rows logged up to then, and the optimiser and RNG states to restore."""

    path: Path
    step: int
    history: list[dict[str, Any]]
    optimizer: dict[str, Any]
    rng: dict[str, Any]

    def load_weights(self, model: Any) -> None:
        """Copy the checkpoint's weights into ``model`` in place: the adapters of a peft model, else every weight
        (tied weights, which save_pretrained writes once, come with the weight they share storage with)."""
        from safetensors.torch import load_file  # why: optional (llm extra)

        where = f"resume_from={str(self.path)!r}"
        unexpected, missing = [], []
        try:
            if is_peft(model):
                from peft import set_peft_model_state_dict  # why: optional; only peft models get here

                weights = load_file(self.path / "adapter_model.safetensors")
                unexpected = list(set_peft_model_state_dict(model, weights).unexpected_keys)
            else:
                index = self.path / "model.safetensors.index.json"
                files = (sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file()
                         else ["model.safetensors"])
                loaded: set[str] = set()
                for name in files:
                    weights = load_file(self.path / name)
                    unexpected += model.load_state_dict(weights, strict=False).unexpected_keys
                    loaded.update(weights)
                tensors = model.state_dict()
                shared = {tensors[k].data_ptr() for k in loaded if k in tensors}
                missing = [k for k in tensors if k not in loaded and tensors[k].data_ptr() not in shared]
        except RuntimeError as exc:  # a shape mismatch: torch's message spans lines
            raise ValidationError(f"{where}: {_first_line(exc)}; expected a checkpoint of this model's "
                                  "architecture") from None
        if unexpected or missing:
            what, keys = ("weights this model does not have", unexpected) if unexpected else ("no weights for",
                                                                                            missing)
            raise ValidationError(f"{where}: {what} {keys[0]!r} (and {len(keys) - 1} more); expected a checkpoint "
                                  "of this model's architecture")

    def restore(self, optimizer: torch.optim.Optimizer, device: torch.device) -> None:
        """Load the optimiser state into ``optimizer`` and set torch's RNG (CPU; CUDA's when saved and ``device`` is
        a CUDA device) to the checkpoint's (the main process's, on every process)."""
        try:
            optimizer.load_state_dict(self.optimizer)
        except (ValueError, KeyError) as exc:
            raise ValidationError(f"resume_from={str(self.path)!r}: its optimiser state does not fit this model "
                                  f"({_first_line(exc)}); expected a checkpoint of the same model") from None
        torch.set_rng_state(self.rng["cpu"])
        if self.rng.get("cuda") is not None and device.type == "cuda":
            torch.cuda.set_rng_state(self.rng["cuda"], device)


def read_resume(path: str | os.PathLike[str], config: Any, total_steps: int, model: Any) -> Resume:
    """The trainer state of checkpoint directory ``path`` (``trainer_state``), checked against this run (cheap
    checks, before any training work): written by the same trainer (``trainer_name``), with the same config but for
    RESUMABLE_CHANGES (the config's own when its class declares them, as the online trainers' GroupConfig does), at
    a step <= ``total_steps`` (this run's), with the weights ``model`` needs (a peft model's adapters, else the full
    model's). Raises a one-line ValidationError otherwise."""
    where = f"resume_from={str(path)!r}"
    path = Path(path)
    if not path.is_dir():
        raise ValidationError(f"{where}: no such directory; expected a step-N or final checkpoint directory")
    if not (path / TRAINER_STATE).is_file():
        raise ValidationError(f"{where}: no {TRAINER_STATE}; expected a checkpoint a trainer wrote with its state "
                              "(step-N or final)")
    try:
        state = torch.load(path / TRAINER_STATE, map_location="cpu", weights_only=True)
        trainer, saved, step = state["trainer"], state["config"], int(state["step"])
    except Exception as exc:  # any unreadable file (not a pickle, missing keys) is the same refusal
        raise ValidationError(f"{where}: {TRAINER_STATE} is unreadable ({_first_line(exc)}); expected one "
                              "written by save_checkpoint") from None
    if trainer != trainer_name(config):
        raise ValidationError(f"{where}: a checkpoint of {trainer}; expected one of {trainer_name(config)}")
    current = config.to_dict()
    resumable = getattr(config, "RESUMABLE_CHANGES", RESUMABLE_CHANGES)
    for name in list(current) + [k for k in saved if k not in current]:
        if name in resumable or (name in saved and name in current and saved[name] == current[name]):
            continue
        theirs, mine = (f"{name}={d[name]!r}" if name in d else f"no {name}" for d in (saved, current))
        raise ValidationError(f"{where}: trained with {theirs}, this run has {mine}; expected the same config "
                              f"(only {', '.join(resumable)} may change)")
    if step > total_steps:  # a config with ``steps`` (the online trainers') sets its length with that alone
        fix = f"steps >= {step}" if "steps" in current else "max_steps / epochs that give at least that many"
        raise ValidationError(f"{where}: at step {step}, beyond this run's {total_steps} steps; expected {fix}")
    weights = "adapter_model.safetensors" if is_peft(model) else "model.safetensors"
    if not (path / weights).is_file() and not (path / f"{weights}.index.json").is_file():
        raise ValidationError(f"{where}: no {weights}; expected a checkpoint of a "
                              f"{'peft' if is_peft(model) else 'full (not peft)'} model like this one")
    return Resume(path, step, state["history"], state["optimizer"], state["rng"])


def begin_run(resume: Resume | None, optimizer: torch.optim.Optimizer, device: torch.device,
              metrics: Path | None) -> tuple[int, MetricsLog]:
    """(steps done, the run's MetricsLog writing ``metrics``): 0 and no rows for a fresh run; for a resumed one
    the checkpoint's step and history rows, its optimiser and RNG state restored (``Resume.restore``)."""
    if resume is None:
        return 0, MetricsLog(metrics)
    resume.restore(optimizer, device)
    return resume.step, MetricsLog(metrics, resume.history)


class MetricsLog:
    """A run's history rows (``rows``), each also appended to ``path`` (metrics.jsonl; None: not written) as it
    comes. ``history``: the rows of the steps already done (a resumed run): the file is first rewritten to hold
    exactly these (atomically), then appended to."""

    def __init__(self, path: Path | None, history: Sequence[dict[str, Any]] = ()) -> None:
        self.rows = [dict(row) for row in history]
        self._file = None
        if path is not None:
            with atomic_open(path, "w") as handle:
                handle.writelines(json.dumps(row) + "\n" for row in self.rows)
            self._file = open(path, "a", encoding="utf-8")

    def __call__(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if self._file is not None:
            self._file.write(json.dumps(row) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def check_finite_loss(loss: torch.Tensor, step: int) -> None:
    """Stop with a clear message instead of training on a NaN/inf loss: the trainers' one finiteness check per
    optimiser step (one device sync; the losses themselves do not re-check their inputs)."""
    if not torch.isfinite(loss).all():
        # detached: float() of a tensor that requires grad warns
        raise ValidationError(f"step {step}: the loss is {float(loss.detach())}; lower the learning rate or "
                              "check the data")
