import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _manage(*args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "HTTPS"}}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, "ENGRAM_STATE_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_without_secret_key_is_refused(tmp_path):
    result = _manage("check", tmp_path=tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_deploy_check_flags_only_https_settings(tmp_path):
    result = _manage("check", "--deploy", tmp_path=tmp_path, SECRET_KEY=secrets.token_urlsafe(64))
    assert set(re.findall(r"security\.W\d+", result.stderr + result.stdout)) == {
        "security.W004",
        "security.W008",
        "security.W012",
        "security.W016",
    }


def test_deploy_check_is_clean_behind_https(tmp_path):
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        tmp_path=tmp_path,
        SECRET_KEY=secrets.token_urlsafe(64),
        HTTPS="1",
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_invalid_boolean_is_a_clear_error(tmp_path):
    result = _manage("check", tmp_path=tmp_path, DEBUG="maybe")
    assert result.returncode != 0
    assert "DEBUG must be a boolean" in result.stderr


def test_a_top_k_the_search_refuses_is_a_start_up_error(tmp_path):
    from memory.search_params import MAX_TOP_K

    too_many = _manage("check", tmp_path=tmp_path, DEBUG="1", RETRIEVAL_TOP_K=str(MAX_TOP_K + 1))
    assert too_many.returncode != 0
    assert f"RETRIEVAL_TOP_K must be <= {MAX_TOP_K}, got {MAX_TOP_K + 1}" in too_many.stderr
    assert _manage("check", tmp_path=tmp_path, DEBUG="1", RETRIEVAL_TOP_K=str(MAX_TOP_K)).returncode == 0
