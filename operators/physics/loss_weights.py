"""Adaptive loss weights by gradient norms ("expert's guide", Wang et al. 2023, section on loss balancing).

Every ``update_every`` steps the trainer computes, for each loss term L_k, the norm of its gradient
with respect to all network parameters and sets

    lambda_k_new = mean_j ||grad L_j|| / ||grad L_k||,      lambda_k <- m lambda_k + (1 - m) lambda_k_new

(a running average with momentum m = 0.9), so that every term pulls on the parameters about equally
hard. The weights are treated as constants by the optimiser (no gradient flows through them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch


def gradient_norms(terms: Mapping[str, torch.Tensor], parameters: Iterable[torch.nn.Parameter]) -> dict[str, float]:
    """``||d term / d parameters||_2`` for every (differentiable, scalar) term; the graph is kept."""
    params = [p for p in parameters if p.requires_grad]
    norms = {}
    for name, term in terms.items():
        grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
        squares = [g.square().sum() for g in grads if g is not None]
        norms[name] = float(torch.stack(squares).sum().sqrt()) if squares else 0.0
    return norms


def balanced_weights(norms: Mapping[str, float]) -> dict[str, float]:
    """``mean_j n_j / (n_k + 1e-5 mean_j n_j)`` for each term ``k``: the guard keeps the weight of a term
    whose gradient vanishes finite (1e5)."""
    mean = sum(norms.values()) / len(norms)
    return {name: mean / (norm + 1e-5 * mean) if mean > 0 else 1.0 for name, norm in norms.items()}


def update_weights(weights: Mapping[str, float], norms: Mapping[str, float], momentum: float) -> dict[str, float]:
    """The running average ``m w + (1 - m) w_new`` of the current weights and :func:`balanced_weights`."""
    new = balanced_weights(norms)
    return {name: momentum * weights[name] + (1 - momentum) * new[name] for name in new}
