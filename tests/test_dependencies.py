"""The installed libraries load together: a release pair that crashes the process on import
(usearch 2.26.6 imported before onnxruntime 1.31/1.32 segfaults) must fail here, in its own
process, not in the middle of the suite. pyproject pins around the known bad pair."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.slow
@pytest.mark.parametrize("order", [("usearch.index", "onnxruntime", "cv2"),
                                   ("onnxruntime", "cv2", "usearch.index"),
                                   ("cv2", "usearch.index", "onnxruntime", "dlib")])
def test_the_native_libraries_import_in_any_order(order: tuple[str, ...]) -> None:
    code = "; ".join(f"import {m}" for m in order) + "; print('ok')"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", (
        f"importing {' then '.join(order)} failed (exit {run.returncode}): {run.stderr[-500:]}")
