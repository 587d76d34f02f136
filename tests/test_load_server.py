"""A short run of the load test (bench/load.py) against the real server: 20 clients and an uploader."""

import json
import subprocess
import sys

import pytest

from qa.config import PROJECT_ROOT

pytestmark = pytest.mark.slow  # each test starts processes that load the models


def test_twenty_clients_while_uploading_get_every_answer(tmp_path):
    out = tmp_path / "load.json"
    result = subprocess.run([sys.executable, str(PROJECT_ROOT / "bench" / "load.py"), "--clients", "20", "--seconds",
                             "12", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["errors"] == 0 and report["questions"] >= 20 and report["uploads"] >= 1
