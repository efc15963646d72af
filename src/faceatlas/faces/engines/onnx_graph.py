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
- ``PRelu(x, s)`` becomes ``x + (1 − s)·Relu(−x)`` with the negation and the product as
  depthwise 1×1 convolutions, so the whole network stays in ORT's blocked NCHWc layout (as
  element-wise ``Sub``/``Mul`` with a per-channel broadcast it spent 20% of the time
  reordering layouts around them, 31% in the four kernels): 1.7× less CPU per face, the
  same embeddings to float rounding (see ``_prelu``).

Embeddings equal OpenCV's to cosine ≥ 0.9999998 (tests/test_sface_runtime.py checks ≥
0.9999). YuNet's file (also block-quantised, no PRelu) goes through the same steps; its input
is declared 640×640 but any multiple of 32 runs, so ``any_size`` frees height and width
(``yunet`` uses it).
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
            nodes += _prelu(node.output[0], ins[0], ins[1], const)
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


def _prelu(out: str, x: str, slope: str, const: dict[str, np.ndarray]) -> list[Any]:
    """``PRelu(x, s)`` as ``x + (1 − s)·Relu(−x)`` (x > 0: x + 0; else x − (1 − s)·x = s·x),
    the negation and the product as depthwise 1×1 convolutions (per-channel slopes; weights
    added to ``const``): every node then runs in ORT's blocked NCHWc layout, the Relu and the
    Add fused into the convolutions, no layout reorder between them. Measured: SFace 17.9 →
    ~10 ms per face; embeddings cosine 0.99999988 to OpenCV's on the shared photos, as
    before (``Relu(x) + (−s)·Relu(−x)``, one node more, was 5% slower). Other slopes get
    ``Relu(x) + s·(x − Relu(x))`` (the same value as PRelu bit for bit)."""
    from onnx import helper

    s = const.get(slope)
    if s is None or s.ndim != 3 or s.shape[1:] != (1, 1):
        return [helper.make_node("Relu", [x], [f"{out}_pos"]),
                helper.make_node("Sub", [x, f"{out}_pos"], [f"{out}_neg"]),
                helper.make_node("Mul", [f"{out}_neg", slope], [f"{out}_negs"]),
                helper.make_node("Add", [f"{out}_pos", f"{out}_negs"], [out])]
    channels = s.shape[0]
    const[f"{out}_minus1"] = np.full((channels, 1, 1, 1), -1.0, dtype=np.float32)
    const[f"{out}_1_minus_s"] = (1.0 - s.astype(np.float32)).reshape(channels, 1, 1, 1)
    depthwise = {"group": channels, "kernel_shape": [1, 1]}
    return [helper.make_node("Conv", [x, f"{out}_minus1"], [f"{out}_negx"], **depthwise),
            helper.make_node("Relu", [f"{out}_negx"], [f"{out}_neg"]),
            helper.make_node("Conv", [f"{out}_neg", f"{out}_1_minus_s"], [f"{out}_fix"],
                             **depthwise),
            helper.make_node("Add", [x, f"{out}_fix"], [out])]


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
