"""Log-probabilities of completions under a causal language model: the quantity every LM trainer here needs.

log pi(y | x) = sum_t log softmax(logits_{t-1})[y_t] over the completion tokens y_t only (prompt and padding
masked). Logits are shifted by one (position t-1 predicts token t). The log-softmax is taken in fp32 whatever
the model's dtype, and only at completion positions, in chunks of ``chunk_size`` positions: a bf16 model's
logits are never copied to fp32 all at once (with gradients, each chunk's fp32 copy is recomputed in the
backward pass instead of kept).

``sequence_logps`` goes further when it can: for a standard Hugging Face causal LM (logits = lm_head(final
hidden state), no soft-capping or scaling) it runs the backbone, gathers the hidden states of the positions
that predict completion tokens, and applies the LM head there only, chunk by chunk (recomputed in the backward
pass): the (B, T, vocabulary) logits of prompts and padding are never made. Other models go through their own
forward and the full logits.

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


# config fields of models whose logits are not just lm_head(hidden): those take the full-logits path
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")


def backbone_and_head(model: Any) -> tuple[Any, Any] | None:
    """(backbone, lm_head) with logits = lm_head(backbone(...).last_hidden_state), or None if ``model`` is not
    such a Hugging Face causal LM (peft wrappers are looked through: their adapters live inside the modules)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    get_head = getattr(inner, "get_output_embeddings", None)
    prefix = getattr(inner, "base_model_prefix", None)
    head = get_head() if callable(get_head) else None
    backbone = getattr(inner, prefix, None) if isinstance(prefix, str) and prefix else None
    config = getattr(inner, "config", None)
    if head is None or backbone is None or backbone is inner or not isinstance(head, torch.nn.Linear):
        return None
    if any(getattr(config, name, None) not in (None, 1.0, 0.0) for name in _LOGIT_TRANSFORMS):
        return None
    return backbone, head


def _head_logps(hidden: torch.Tensor, labels: torch.Tensor, head: Any, temperature: float) -> torch.Tensor:
    return _chunk_logps(head(hidden), labels, temperature)


def head_logps_at(backbone: Any, head: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                  scored: torch.Tensor, temperature: float = 1.0, chunk_size: int = 1024
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The backbone over the batch, then the LM head only on the hidden states that predict the ``scored`` tokens
    (B, T) (every scored token after the first), ``chunk_size`` at a time (with gradients each chunk's logits are
    recomputed in the backward pass instead of kept). Returns (rows, cols, log-probs), each (K,), K scored tokens."""
    if bool(attention_mask.all()):  # no padding: no mask, so attention takes its plain causal path (5-9% on CPU)
        attention_mask = None
    hidden = backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    mask = scored.bool().clone()
    mask[:, 0] = False  # the first token has no prediction
    rows, cols = mask.nonzero(as_tuple=True)
    states, labels = hidden[rows, cols - 1], input_ids[rows, cols]
    values = []
    for start in range(0, len(labels), chunk_size):
        piece, target = states[start:start + chunk_size], labels[start:start + chunk_size]
        if piece.requires_grad:  # keep the hidden chunk for backward, not its (chunk, vocabulary) logits
            values.append(checkpoint(_head_logps, piece, target, head, temperature, use_reentrant=False))
        else:
            values.append(_head_logps(piece, target, head, temperature))
    flat = torch.cat(values) if values else hidden.new_zeros(0, dtype=torch.float32)
    return rows, cols, flat


def sequence_logps(model: Any, batch: dict[str, torch.Tensor], temperature: float = 1.0,
                   chunk_size: int = 1024, whole: bool = False) -> torch.Tensor:
    """Summed completion log-probs log pi(y | x), (B,) fp32, one forward pass over the whole batch.

    ``batch``: input_ids (B, T), attention_mask (B, T), completion_mask (B, T) as made by
    ``irlhf.llm.tokenize.collate`` / ``collate_pairs``. The LM head runs at completion positions only when the
    model allows it (``backbone_and_head``); the result is the same either way up to float rounding.
    ``whole``: also score the prompt; returns (B, 2), column 0 the completion's sum as above and column 1 the sum
    over every token after the first (prompt and completion), from the same per-token log-probs.
    """
    missing = [k for k in ("input_ids", "attention_mask", "completion_mask") if k not in batch]
    if missing:
        raise ValidationError(f"sequence_logps: batch lacks {missing}; make it with irlhf.llm.tokenize.collate")
    if not temperature > 0:
        raise ValidationError(f"temperature={temperature!r}: expected > 0")
    parts = backbone_and_head(model)
    input_ids, completion_mask = batch["input_ids"], batch["completion_mask"]
    scored = batch["attention_mask"] if whole else completion_mask
    if parts is None:
        logits = forward_logits(model, batch)
        per_token = completion_logps(logits, input_ids, scored, temperature, chunk_size)
        if not whole:
            return per_token.sum(-1)
        return torch.stack([(per_token * completion_mask.to(per_token.dtype)).sum(-1), per_token.sum(-1)], dim=1)
    rows, cols, flat = head_logps_at(*parts, input_ids, batch["attention_mask"], scored, temperature, chunk_size)
    zeros = torch.zeros(len(input_ids), dtype=torch.float32, device=flat.device)
    if not whole:
        return zeros.index_add(0, rows, flat)
    answer = zeros.index_add(0, rows, flat * completion_mask[rows, cols].to(flat.dtype))
    return torch.stack([answer, zeros.index_add(0, rows, flat)], dim=1)
