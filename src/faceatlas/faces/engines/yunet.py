"""YuNet on ONNX Runtime: OpenCV's ``FaceDetectorYN.detect`` step for step, for less CPU.

``FaceDetectorYN`` pads the BGR image with zeros to a multiple of 32 (right and bottom), runs
the network on it as a float blob and decodes the 12 outputs (score, box and 5 landmarks per
cell at strides 8, 16 and 32) before a non-maximum suppression. The network is the same
pinned file, made fit for ONNX Runtime by ``onnx_graph`` (weights dequantised once, any input
size); the decoding below is OpenCV's (``modules/objdetect/src/face_detect.cpp``) in numpy,
in float32 like the C++, and the suppression is OpenCV's own ``cv2.dnn.NMSBoxes`` on the same
integer boxes. So the rows are OpenCV's to float rounding (tests/test_sface_runtime.py: same
faces, landmarks within 0.01 px on the shared photos). On one core the network alone takes
2.4× less CPU than in ``FaceDetectorYN`` (6.0 vs 14.8 ms at 640×448), a photo's detection
with its resize to 640 px 1.8× less (``benchmarks/bench_sface.py``): ORT's convolution
kernels are faster than OpenCV's DNN's on one thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from faceatlas.faces.engines import onnx_graph

STRIDES = (8, 16, 32)
#: the padding ``FaceDetectorYN`` gives the input (its ``divisor``)
DIVISOR = 32


class YuNet:
    """``detect(bgr)`` → N×15 float32 rows (x, y, w, h, 5 landmarks x/y, score), as
    ``cv2.FaceDetectorYN.detect`` returns them; thread-safe (an ORT session is)."""

    def __init__(self, model: Path, score_threshold: float, nms_threshold: float = 0.3,
                 top_k: int = 5000) -> None:
        self.session = onnx_graph.session(model, any_size=True)
        self.outputs = [o.name for o in self.session.get_outputs()]  # cls_8, …, kps_32
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.top_k = top_k

    def detect(self, bgr: np.ndarray) -> np.ndarray:
        h, w = bgr.shape[:2]
        pad_h, pad_w = -(-h // DIVISOR) * DIVISOR, -(-w // DIVISOR) * DIVISOR
        blob = np.zeros((1, 3, pad_h, pad_w), dtype=np.float32)
        blob[0, :, :h, :w] = bgr.transpose(2, 0, 1)
        out = dict(zip(self.outputs, self.session.run(None, {"input": blob}), strict=True))
        faces = np.vstack([self._decode(out, s, pad_w // s) for s in STRIDES])
        if len(faces) <= 1:  # as OpenCV: no suppression for one face
            return faces
        import cv2

        boxes = faces[:, :4].astype(np.int32).tolist()  # OpenCV's Rect2i(int(x), ...)
        keep = cv2.dnn.NMSBoxes(boxes, faces[:, 14].tolist(), self.score_threshold,
                                self.nms_threshold, 1.0, self.top_k)
        return faces[np.asarray(keep, dtype=np.int64).reshape(-1)]

    def _decode(self, out: dict[str, Any], stride: int, cols: int) -> np.ndarray:
        """The cells of one stride over the score threshold, in OpenCV's (row-major) order."""
        cls = np.clip(out[f"cls_{stride}"].reshape(-1), 0.0, 1.0)
        obj = np.clip(out[f"obj_{stride}"].reshape(-1), 0.0, 1.0)
        score = np.sqrt(cls * obj)
        idx = np.flatnonzero(score >= self.score_threshold)
        bbox = out[f"bbox_{stride}"].reshape(-1, 4)[idx]
        kps = out[f"kps_{stride}"].reshape(-1, 10)[idx]
        grid = np.stack([idx % cols, idx // cols], axis=1).astype(np.float32)  # (c, r)
        st = np.float32(stride)
        centre = (grid + bbox[:, :2]) * st
        size = np.exp(bbox[:, 2:]) * st
        faces = np.empty((len(idx), 15), dtype=np.float32)
        faces[:, :2] = centre - size / np.float32(2)
        faces[:, 2:4] = size
        faces[:, 4:14] = ((kps.reshape(-1, 5, 2) + grid[:, None, :]) * st).reshape(-1, 10)
        faces[:, 14] = score[idx]
        return faces
