"""Log-probabilities of completions under a causal language model: the quantity every LM trainer here needs.

log pi(y | x) = sum_t log softmax(logits_{t-1})[y_t] over the completion tokens y_t only (prompt and padding
masked). Logits are shifted by one (position t-1 predicts token t). The log-softmax is taken in fp32 whatever
the model's dtype, and only at completion positions, in chunks of ``chunk_size`` positions: a bf16 model's
logits are never copied to fp32 all at once (with gradients, each chunk's fp32 copy is recomputed in the
backward pass instead of kept).

    batch = collate_pairs(chosen, rejected, pad_id)      # irlhf.llm.tokenize
    logps = sequence_logps(model, batch)                 # (2B,) fp32; [:B] chosen, [B:] rejected
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

from irlhf.core.errors import ValidationError


def _chunk_logps(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    return logits.gather(-1, labels[:, None])[:, 0] - torch.logsumexp(logits, dim=-1)


def gather_logps(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0,
                 chunk_size: int = 1024) -> torch.Tensor:
    """log softmax(logits / temperature)[label] for N positions: logits (N, V), labels (N,) -> (N,) fp32."""
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ValidationError(f"gather_logps: logits {tuple(logits.shape)} and labels {tuple(labels.shape)}; "
                              "expected (N, V) and (N,)")
    if not temperature > 0:
        raise ValidationError(f"temperature={temperature!r}: expected > 0")
    recompute = logits.requires_grad and logits.dtype != torch.float32
    parts = []
    for start in range(0, len(labels), chunk_size):
        piece, target = logits[start:start + chunk_size], labels[start:start + chunk_size]
        if recompute:  # keep only the low-precision chunk for backward, not its fp32 copy
            parts.append(checkpoint(_chunk_logps, piece, target, temperature, use_reentrant=False))
        else:
            parts.append(_chunk_logps(piece, target, temperature))
    return torch.cat(parts) if parts else logits.new_zeros(0, dtype=torch.float32)


def completion_logps(logits: torch.Tensor, input_ids: torch.Tensor, completion_mask: torch.Tensor,
                     temperature: float = 1.0, chunk_size: int = 1024) -> torch.Tensor:
    """Per-token log-probs of the completion tokens: logits (B, T, V), input_ids (B, T), completion_mask (B, T)
    -> (B, T) fp32, entry t = log p(input_ids[t] | tokens < t) where completion_mask[t], else 0."""
    if logits.ndim != 3 or input_ids.shape != logits.shape[:2] or completion_mask.shape != input_ids.shape:
        raise ValidationError(f"completion_logps: logits {tuple(logits.shape)}, input_ids {tuple(input_ids.shape)}, "
                              f"completion_mask {tuple(completion_mask.shape)}; expected (B, T, V), (B, T), (B, T)")
    mask = completion_mask.bool().clone()
    mask[:, 0] = False  # the first token has no prediction
    rows, cols = mask.nonzero(as_tuple=True)
    values = gather_logps(logits[rows, cols - 1], input_ids[rows, cols], temperature, chunk_size)
    out = torch.zeros(input_ids.shape, dtype=torch.float32, device=logits.device)
    return out.index_put((rows, cols), values)


def forward_logits(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The model's logits (B, T, V) for a collated batch (right padding, attention mask)."""
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits


def sequence_logps(model: Any, batch: dict[str, torch.Tensor], temperature: float = 1.0,
                   chunk_size: int = 1024) -> torch.Tensor:
    """Summed completion log-probs log pi(y | x), (B,) fp32, one forward pass over the whole batch.

    ``batch``: input_ids (B, T), attention_mask (B, T), completion_mask (B, T) as made by
    ``irlhf.llm.tokenize.collate`` / ``collate_pairs``.
    """
    missing = [k for k in ("input_ids", "attention_mask", "completion_mask") if k not in batch]
    if missing:
        raise ValidationError(f"sequence_logps: batch lacks {missing}; make it with irlhf.llm.tokenize.collate")
    logits = forward_logits(model, batch)
    return completion_logps(logits, batch["input_ids"], batch["completion_mask"], temperature, chunk_size).sum(-1)
