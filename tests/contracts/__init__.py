"""JSON Schemas of the old system's answers (from ../shared/docs/SEED-SYSTEM.md) and a checker
that reports every mismatch field by field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


def schema(name: str) -> dict[str, Any]:
    return json.loads((HERE / f"{name}.schema.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def mismatches(name: str, answer: object) -> list[str]:
    """Every place ``answer`` differs from the schema (path: message); empty when it fits."""
    import jsonschema_rs

    whole = schema(name)
    # one answer shape of several: report the fields of the closest shape, not "none fits"
    branches = whole.get("oneOf") or [None]
    best: list[str] | None = None
    best_key = (True, 0)
    for branch in branches:
        part = {k: v for k, v in whole.items() if k != "oneOf"}
        if branch is not None:
            part.update(branch)
        errors = [f"{'/'.join(map(str, e.instance_path)) or '(root)'}: {e.message}"
                  for e in jsonschema_rs.validator_for(part).iter_errors(answer)]
        # the shape whose status word matches first, then the one with fewest differences
        key = (any(e.startswith(("status:", "success:")) for e in errors), len(errors))
        if best is None or key < best_key:
            best, best_key = errors, key
    return best or []


def assert_fits(name: str, answer: object) -> None:
    problems = mismatches(name, answer)
    assert not problems, f"{name}: " + "; ".join(problems) + f"\nanswer: {answer!r}"
