"""Invalid settings (issue 22, finding 7): one line naming the variable, what was given
(secrets hidden) and what is accepted, exit 1, on every command and at ``serve`` start; a
JSON list of tokens is a list of admin tokens."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import faceatlas
from faceatlas import settings as config
from faceatlas.domain.errors import ConfigError

SRC = str(Path(faceatlas.__file__).resolve().parents[1])  # the tree under test


def _run(args: list[str], env: dict[str, str], home: Path) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("FACEATLAS_")}
    full.update(PYTHONPATH=SRC, FACEATLAS_HOME=str(home), COLUMNS="200", **env)
    return subprocess.run([sys.executable, "-m", "faceatlas", *args], env=full,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("command", "env", "words"), [
    (["stats"], {"FACEATLAS_WORKERS": "abc"}, ["FACEATLAS_WORKERS='abc'", "a whole number"]),
    pytest.param(["names", "export", "x.csv"],
                 {"FACEATLAS_DETECTOR": "xyz", "FACEATLAS_VIDEO_FPS": "99"},
                 ["FACEATLAS_DETECTOR='xyz'", "'hog' or 'cnn'", "FACEATLAS_VIDEO_FPS='99'",
                  "less than or equal to 8"], marks=pytest.mark.slow),
    pytest.param(["serve", "--port", "1"],
                 {"FACEATLAS_API_TOKENS": '{"zz-secret-token-zz-0123": 5}'},
                 ["FACEATLAS_API_TOKENS", "collection name"], marks=pytest.mark.slow),
])
def test_invalid_setting_is_one_line_and_exit_1(tmp_path: Path, env: dict[str, str],
                                                words: list[str], command: list[str]) -> None:
    out = _run(command, env, tmp_path)
    assert out.returncode == 1, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: invalid setting:"), out.stderr
    for word in words:
        assert word in lines[0]
    assert "Traceback" not in out.stderr and "zz-secret" not in out.stderr + out.stdout


def test_secrets_are_hidden_in_the_line() -> None:
    with pytest.raises(ConfigError) as caught:
        config.load_settings(rapidapi_key=12345678901234567890, database_url=["postgres://u:pw@h"])
    assert "pw@h" not in str(caught.value) and "FACEATLAS_DATABASE_URL=(hidden)" in str(
        caught.value)


def test_json_list_of_tokens_is_admin_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = ["first-long-token-0123456789", "second-long-token-0123456789"]
    monkeypatch.setenv("FACEATLAS_API_TOKENS", json.dumps(tokens))
    s = config.Settings()
    assert s.api_tokens == tokens and s.token_collections == {}
    monkeypatch.setenv("FACEATLAS_API_TOKENS", "[1, 2]")
    with pytest.raises(ConfigError, match="JSON list must hold token strings"):
        config.load_settings()
