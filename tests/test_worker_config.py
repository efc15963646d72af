"""Distributed mode's knobs live in the one Settings, and Celery reads them when first used,
not when ``faceatlas.jobs.worker`` is imported (no broker, no environment needed to import)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from faceatlas.settings import Settings

PROBE = """
import faceatlas.jobs.worker as w
from faceatlas.jobs.worker import tasks
assert not tasks.app.configured, "configured at import time"
print(w.app.conf.broker_url, w.app.conf.task_default_queue, w.app.conf.task_time_limit,
      w.app.conf.broker_transport_options["visibility_timeout"])
"""


def test_distributed_knobs_are_settings_with_the_old_env_names(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"LEASE_SECONDS": "7", "HEARTBEAT_SECONDS": "2", "QUEUE": "q2",
                        "MAX_ATTEMPTS": "3", "RETRY_BACKOFF": "1.5"}.items():
        monkeypatch.setenv(f"FACEATLAS_{name}", value)
    s = Settings()
    assert (s.lease_seconds, s.heartbeat_seconds, s.queue, s.max_attempts, s.retry_backoff) \
        == (7.0, 2.0, "q2", 3, 1.5)


def test_celery_is_configured_on_first_use_not_at_import() -> None:
    env = {**os.environ, "FACEATLAS_BROKER_URL": "redis://127.0.0.1:1/5",
           "FACEATLAS_QUEUE": "probe", "FACEATLAS_TASK_TIME_LIMIT": "99",
           "FACEATLAS_VISIBILITY_TIMEOUT": "120"}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["redis://127.0.0.1:1/5", "probe", "99", "120.0"]
