"""The SFace and YuNet ONNX files made fit for ONNX Runtime, in memory (the files themselves are
never changed).

The ``int8bq`` SFace file stores its weights block-quantised (``DequantizeLinear`` + ``Reshape``
in front of every convolution) and lists 175 graph inputs, 30 of them dangling. OpenCV's
reader tolerates both; ONNX Runtime refuses the dangling inputs, treats the listed
initialisers as overridable (no constant folding, no Conv+BatchNorm fusion) and never folds
``DequantizeLinear`` (kept for quantised kernels). Its ``PRelu`` with per-channel slopes runs
a generic broadcast: 55% of the time. So, measured (``benchmarks/bench_sface.py``):

- the weights are dequantised once here, with numpy, exactly as ``DequantizeLinear`` does
  ((q − zero point) × scale per block), and stored as float initialisers;
- every input that is an initialiser or unused is dropped; the batch dimension is free;
- ``PRelu(x, s)`` becomes ``Relu(x) + s·(x − Relu(x))``: the same value bit for bit (for
  x > 0 it is x + s·0, else 0 + s·x), four element-wise kernels ORT runs fast.

Embeddings equal OpenCV's to cosine ≥ 0.99999 (tests/test_sface_runtime.py). YuNet's file
(also block-quantised, no PRelu) goes through the same steps; its input is declared 640×640
but any multiple of 32 runs, so ``any_size`` frees height and width (``yunet`` uses it).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np


def _dequantize(q: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis: int,
                block: int) -> np.ndarray:
    """``DequantizeLinear`` (opset 21) on constants: per tensor, per axis or per block."""
    if block:
        sl: list[slice] = [slice(None)] * q.ndim
        sl[axis] = slice(0, q.shape[axis])
        scale = np.repeat(scale, block, axis=axis)[tuple(sl)]
        zero = np.repeat(zero, block, axis=axis)[tuple(sl)]
    elif scale.ndim == 1 and q.ndim > 1:
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((q.astype(np.int32) - zero.astype(np.int32)) * scale).astype(np.float32)


@functools.lru_cache(maxsize=4)
def runtime_graph(path: Path, any_size: bool = False) -> bytes:
    """The model at ``path`` with constant weights, clean inputs and fast PRelu, serialised
    (once per process: a recognition pool's engines share it, ~1 s of work each otherwise).
    The batch dimension is free; with ``any_size`` the input's height and width and every
    output dimension but the last are too (YuNet: its file says 640×640, any multiple of 32
    runs, as OpenCV's ``FaceDetectorYN`` feeds it)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    const: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    nodes: list[Any] = []
    for node in graph.node:
        ins = list(node.input)
        if node.op_type == "DequantizeLinear" and all(i in const for i in ins):
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            scale = const[ins[1]]
            zero = const[ins[2]] if len(ins) > 2 else np.zeros(scale.shape, np.int8)
            const[node.output[0]] = _dequantize(const[ins[0]], scale, zero,
                                                attrs.get("axis", 1), attrs.get("block_size", 0))
        elif node.op_type == "Reshape" and all(i in const for i in ins):
            const[node.output[0]] = const[ins[0]].reshape(const[ins[1]])
        elif node.op_type == "PRelu":
            out = node.output[0]
            nodes += [helper.make_node("Relu", [ins[0]], [f"{out}_pos"]),
                      helper.make_node("Sub", [ins[0], f"{out}_pos"], [f"{out}_neg"]),
                      helper.make_node("Mul", [f"{out}_neg", ins[1]], [f"{out}_negs"]),
                      helper.make_node("Add", [f"{out}_pos", f"{out}_negs"], [out])]
        else:
            nodes.append(node)
    used = {i for n in nodes for i in n.input} | {o.name for o in graph.output}
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(numpy_helper.from_array(np.asarray(v), k)
                             for k, v in const.items() if k in used)
    inputs = [i for i in graph.input if i.name not in const and i.name in used]
    del graph.input[:]
    graph.input.extend(inputs)
    for tensor in [*graph.input, *graph.output]:
        tensor.type.tensor_type.shape.dim[0].dim_param = "N"
    if any_size:
        for tensor in graph.input:
            dims = tensor.type.tensor_type.shape.dim
            dims[2].dim_param, dims[3].dim_param = "H", "W"
        for tensor in graph.output:
            for k, dim in enumerate(tensor.type.tensor_type.shape.dim[1:-1], 1):
                dim.dim_param = f"{tensor.name}_{k}"
    return bytes(model.SerializeToString())


def session(path: Path, any_size: bool = False) -> Any:
    """An ONNX Runtime CPU session of ``runtime_graph(path, any_size)`` on one thread: parallelism
    comes from worker processes and the engine pool, ORT's own threads would oversubscribe."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3  # the file's own quirks are handled above: no warnings
    return ort.InferenceSession(runtime_graph(path, any_size), opts,
                                providers=["CPUExecutionProvider"])
