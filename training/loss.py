"""The MAE × PKT weighted cross entropy Σ wᵢ·CEᵢ, position i predicting token i+1, without the full logits.

The plain formula (:func:`weighted_ce_sum`) takes the model's logits, batch × length
× vocabulary, and upcasts them to fp32: with a 151,936-token vocabulary, batch 4 and
length 4096 that is 5 GB of bf16 logits and a 10 GB fp32 copy, and the backward keeps
them. Most positions weigh 0 (prompt, tool output, masked calls), so :func:`weighted_ce`
runs the model to its last hidden state only, takes the positions that weigh
something, and puts them through the output layer :data:`CHUNK_TOKENS` at a time,
each chunk under ``torch.utils.checkpoint``: one chunk's logits exist at once, in the
forward and again in the backward. The sum is the plain formula's, to float rounding.

That needs the logits to be the output layer applied to the decoder's last hidden
state, plus at most a known scale or cap: :data:`HEADS` names the model classes whose
``forward`` in transformers 5.24 was read and tested to be so (tests/test_loss.py
checks each against the model's own logits). Any other class takes the plain formula.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from training.data import IGNORE

#: Weighted positions put through the output layer at once: with a 151,936-token vocabulary one chunk's
#: fp32 logits are 0.6 GB. The result does not depend on it; only the peak memory and the speed do.
CHUNK_TOKENS = 1024

#: What a model's ``forward`` does to ``lm_head(hidden)`` to make its logits.
LogitTransform = Callable[[Any, torch.Tensor], torch.Tensor]


def _as_is(model: Any, logits: torch.Tensor) -> torch.Tensor:
    return logits


def _soft_capped(model: Any, logits: torch.Tensor) -> torch.Tensor:
    cap = model.config.final_logit_softcapping
    return logits if cap is None else torch.tanh(logits / cap) * cap


def _times_logit_scale(model: Any, logits: torch.Tensor) -> torch.Tensor:
    return logits * model.logit_scale


def _over_logits_scaling(model: Any, logits: torch.Tensor) -> torch.Tensor:
    return logits / model.config.logits_scaling


#: The causal-LM classes whose logits are ``transform(lm_head(last_hidden_state[kept positions]))``, by name.
#: A class not here (a multimodal wrapper, remote code, a model that mixes in more after its head) is not
#: assumed to be so: it takes the plain formula.
HEADS: dict[str, LogitTransform] = {
    **dict.fromkeys((
        "LlamaForCausalLM", "MistralForCausalLM", "MinistralForCausalLM", "MixtralForCausalLM",
        "Qwen2ForCausalLM", "Qwen2MoeForCausalLM", "Qwen3ForCausalLM", "Qwen3MoeForCausalLM",
        "PhiForCausalLM", "Phi3ForCausalLM", "GemmaForCausalLM", "SmolLM3ForCausalLM", "Olmo2ForCausalLM",
        "Starcoder2ForCausalLM", "Glm4ForCausalLM", "Exaone4ForCausalLM",
    ), _as_is),
    "Gemma2ForCausalLM": _soft_capped,
    "Gemma3ForCausalLM": _soft_capped,
    "CohereForCausalLM": _times_logit_scale,
    "Cohere2ForCausalLM": _times_logit_scale,
    "GraniteForCausalLM": _over_logits_scaling,
}


def shifted(labels: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The target and weight of each position: the next token's, -100 / 0 after the last.

    The labels and weights are shifted left (padded) rather than the logits sliced,
    as the built-in causal-LM loss does, so the logits are never copied.
    """
    return F.pad(labels, (0, 1), value=IGNORE)[:, 1:], F.pad(weights, (0, 1), value=0.0)[:, 1:]


def weighted_ce_sum(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ wᵢ·CEᵢ from the full logits, upcast to fp32; a weight-0 position costs one multiply by zero."""
    targets, weight = shifted(labels, weights)
    ce = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE, reduction="none"
    )
    return (ce * weight.reshape(-1)).sum()


def causal_lm(model: Any) -> Any:
    """The transformers model inside DDP / DeepSpeed / compile wrappers and a ``PeftModel``."""
    from accelerate.utils import extract_model_from_parallel

    model = extract_model_from_parallel(model, keep_torch_compile=False)
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def describe(model: Any) -> str:
    """Which formula :func:`weighted_ce` takes for ``model``, for the line a run starts with."""
    name = type(causal_lm(model)).__name__
    if name in HEADS:
        return f"chunked ({CHUNK_TOKENS} tokens)"
    return f"full logits ({name} is not a model whose logits are known to be its output layer's)"


def weighted_ce(
    model: Any, inputs: dict[str, torch.Tensor], labels: torch.Tensor, weights: torch.Tensor,
    chunk: int = CHUNK_TOKENS,
) -> tuple[torch.Tensor, Any]:
    """``(Σ wᵢ·CEᵢ, the model's outputs)`` of ``model(**inputs)``: chunked when the model's class is in
    :data:`HEADS`, whose outputs then hold no logits, else from the full logits."""
    lm = causal_lm(model)
    transform = HEADS.get(type(lm).__name__)
    if transform is None:
        outputs = model(**inputs)
        return weighted_ce_sum(outputs.logits, labels, weights), outputs
    captured: dict[str, torch.Tensor] = {}

    def keep_last_hidden_state(module, args, output) -> None:
        captured["hidden"] = output[0] if isinstance(output, tuple) else output.last_hidden_state

    # the whole model runs (through its DDP / peft wrappers, so their hooks see the step) but keeps no
    # position's logits; the decoder's output is what its head would have seen
    handle = lm.get_decoder().register_forward_hook(keep_last_hidden_state)
    try:
        outputs = model(**inputs, logits_to_keep=torch.zeros_like(labels, dtype=torch.bool))
    finally:
        handle.remove()
    targets, weight = shifted(labels, weights)
    kept = (weight != 0) & (targets != IGNORE)
    hidden, targets, weight = captured["hidden"][kept], targets[kept], weight[kept]
    head = lm.get_output_embeddings()

    def chunk_sum(hidden: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        logits = transform(lm, head(hidden)).float()
        return (F.cross_entropy(logits, targets, reduction="none") * weight).sum()

    # at least one chunk, empty when nothing weighs: the sum stays a function of the parameters
    total = sum(checkpoint(chunk_sum, hidden[start:start + chunk], targets[start:start + chunk],
                           weight[start:start + chunk], use_reentrant=False)
                for start in range(0, max(len(targets), 1), chunk))
    return total, outputs
