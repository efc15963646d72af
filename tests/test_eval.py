"""`faceatlas eval`: metrics on real labelled photos, the report, calibration into settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from faceatlas.cli import app
from faceatlas.gallery.evaluate import Verification, load_folder
from faceatlas.settings import Settings, get_settings


def test_far_threshold_and_tar_are_exact() -> None:
    v = Verification(np.array([0.1, 0.2, 0.3, 0.9]), np.linspace(0.5, 1.5, 1000))
    t = v.threshold_at_far(1e-2)  # 10 impostors may pass: just under the 11th smallest
    assert t is not None and 0.5 + 9 / 999 < t < 0.5 + 10 / 999
    far, tar = v.far_tar(t)
    assert far == 0.01 and tar == 0.75
    assert v.threshold_at_far(1e-4) is None  # 1000 impostor pairs cannot measure 1e-4
    assert v.tar_at_far(1e-4) is None


@pytest.mark.slow
def test_eval_report_and_calibration(
    faces_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("FACEATLAS_HOME", str(home))
    get_settings.cache_clear()
    out = tmp_path / "report"
    folder = faces_root / "people"
    samples = load_folder(folder, per_identity=4)
    assert len({s.identity for s in samples}) == 19
    result = CliRunner().invoke(app, [
        "eval", str(folder), "--engine", "sface", "--per-identity", "4", "--out", str(out),
        "--calibrate"])
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    for section in ("# Face engine evaluation", "## Summary", "## ROC", "## sface",
                    "### Detection", "### Verification", "### Identification (open set)",
                    "### Speed", "TAR at FAR 1e-3", "CPU ms per image"):
        assert section in report, section
    for png in ("roc.png", "hist_sface.png"):
        with Image.open(out / png) as img:
            assert img.format == "PNG" and img.size == (720, 520)
    (summary,) = json.loads((out / "summary.json").read_text())
    assert summary["detection_rate"] == 1.0
    assert summary["accuracy_configured"] >= 0.995
    assert summary["top1"] >= 0.95
    assert summary["cpu_ms_per_image"] > 0
    # --calibrate: settings now read sface's thresholds from the file, dlib's stay default
    calibration = json.loads((home / "thresholds.json").read_text())
    chosen = calibration["engines"]["sface"]
    # ~2k impostor pairs cannot measure FAR 1e-4: recognise falls back to the 1e-3 threshold
    assert chosen["recognize"] == chosen["accept"] == round(summary["threshold_at_target_far"], 4)
    s = Settings(home=home)
    assert s.thresholds("sface").recognize == chosen["recognize"]
    assert s.thresholds("sface").link == chosen["link"] <= chosen["recognize"]
    assert s.thresholds("dlib").recognize == 0.55


def test_eval_refuses_an_unlabelled_folder(tmp_path: Path) -> None:
    (tmp_path / "only_one").mkdir()
    result = CliRunner().invoke(app, ["eval", str(tmp_path), "--engine", "sface"])
    assert result.exit_code == 1
    assert "at least two identities" in result.output
