"""BatchNorm folded into the convolution before it, for inference: :func:`fold_batchnorm`.

At inference a BatchNorm is a per-channel affine map with fixed statistics, so a convolution
followed by one equals a single convolution with scaled weights and a bias. Folding removes one
memory-bound pass over every feature map (PromptUNet has a BatchNorm after each of its
convolutions) and lets the convolution's epilogue apply the bias. ONNX Runtime and TensorRT fold
on their own; the PyTorch runtime does not, hence this module.

Which BatchNorm follows which convolution is found by running the model once with hooks (a
BatchNorm whose input is exactly a convolution's output), so it works on any model built of
``nn.Conv2d`` and ``nn.BatchNorm2d`` whatever its attribute names; a module that computes a
convolution from its weights itself names its pairs (``batchnorm_pairs()``). The folded copy is then checked
against the original on the same input; a model whose convolution output also feeds something
else (where folding would change that other use) fails the check and is returned unfolded.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn


def fold_batchnorm(model: nn.Module, example: tuple[Tensor, ...], atol: float = 1e-4) -> tuple[nn.Module, int]:
    """A copy of ``model`` in eval mode with every BatchNorm that follows a convolution folded into it.

    Args:
        model: Any module; its weights are not changed (it is put in eval mode).
        example: Inputs of one forward pass (small ones do: only the module graph matters).
        atol: Largest absolute difference between the outputs of the copy and of ``model`` on
            ``example`` (relative to the largest output magnitude) for the copy to be returned.

    Returns:
        ``(module, folded)``: the folded copy and how many BatchNorms it folded; ``(model, 0)``
        (in eval mode) when nothing could be folded or the check failed.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        >>> folded, count = fold_batchnorm(net, (torch.rand(1, 3, 8, 8),))
        >>> count, type(folded[1]).__name__
        (1, 'Identity')
    """
    model.eval()
    names = {id(module): name for name, module in model.named_modules()}
    pairs = [(names[id(conv)], names[id(norm)]) for conv, norm in _conv_batchnorm_pairs(model, example)]
    if not pairs:
        return model, 0
    copied = copy.deepcopy(model).eval()
    pairs = [(copied.get_submodule(conv), copied.get_submodule(norm)) for conv, norm in pairs]
    parents = {id(child): (parent, name) for parent in copied.modules() for name, child in parent.named_children()}
    with torch.no_grad():
        for conv, norm in pairs:
            scale = norm.running_var.add(norm.eps).rsqrt()
            shift = -norm.running_mean * scale
            if norm.affine:
                scale, shift = scale * norm.weight, shift * norm.weight + norm.bias
            bias = conv.bias if conv.bias is not None else torch.zeros_like(scale)
            conv.weight.mul_(scale.reshape(-1, *([1] * (conv.weight.ndim - 1))))
            conv.bias = nn.Parameter(bias * scale + shift)
            parent, name = parents[id(norm)]
            setattr(parent, name, nn.Identity())
        expected, got = _tensors(model(*example)), _tensors(copied(*example))
    if len(expected) != len(got) or not all(_close(a, b, atol) for a, b in zip(expected, got)):
        return model, 0
    return copied, len(pairs)


def _conv_batchnorm_pairs(model: nn.Module, example: tuple[Tensor, ...]) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """``(conv, batchnorm)`` pairs where the BatchNorm's input is the convolution's output, each
    module in one pair only (a module called twice with different partners is left alone)."""
    outputs: dict[int, tuple[nn.Conv2d, Tensor]] = {}
    found: list[tuple[nn.Conv2d, nn.BatchNorm2d | None]] = []

    def after_conv(module: nn.Conv2d, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        outputs[id(output)] = (module, output)  # the tensor is kept, so its id is not reused

    def after_norm(module: nn.BatchNorm2d, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        entry = outputs.get(id(inputs[0]))
        found.append((entry[0] if entry is not None and entry[1] is inputs[0] else None, module))

    hooks = [m.register_forward_hook(after_conv) for m in model.modules() if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_hook(after_norm) for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    try:
        with torch.no_grad():
            model(*example)
    finally:
        for hook in hooks:
            hook.remove()
    # A module that applies a convolution from its weights (not by calling it) names its pairs.
    declared = [pair for module in model.modules() if hasattr(module, "batchnorm_pairs") for pair in module.batchnorm_pairs()]
    declared_norms = {id(norm) for _, norm in declared}
    found = [(conv, norm) for conv, norm in found if id(norm) not in declared_norms] + declared
    partners: dict[int, set[int]] = {}
    for conv, norm in found:
        for module, other in ((conv, norm), (norm, conv)):
            if module is not None:
                partners.setdefault(id(module), set()).add(id(other))
    unique = {(id(c), id(n)): (c, n) for c, n in found if c is not None}
    return [(c, n) for c, n in unique.values() if len(partners[id(c)]) == 1 and len(partners[id(n)]) == 1]


def _tensors(output: object) -> list[Tensor]:
    if isinstance(output, Tensor):
        return [output]
    return [t for item in output for t in _tensors(item)] if isinstance(output, (tuple, list)) else []


def _close(a: Tensor, b: Tensor, atol: float) -> bool:
    scale = max(float(a.abs().max()), 1.0) if a.numel() else 1.0
    return a.shape == b.shape and bool(((a.float() - b.float()).abs() <= atol * scale).all())
