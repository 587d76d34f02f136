import json
import subprocess
import sys

import pytest

from qa.config import PROJECT_ROOT
from tests.conftest import SEED_ID

pytestmark = pytest.mark.slow  # each test starts processes that load the models


def run_qa(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "qa", *args], capture_output=True, text=True, timeout=timeout)


def test_index_then_ask_as_json(tmp_path, corpus, tiny_reader):
    index = tmp_path / "index"
    result = run_qa("index", str(corpus), "--index", str(index), "--reader", tiny_reader)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "1 documents" in result.stdout
    result = run_qa("ask", "Who chaired the session?", "--index", str(index), "--reader", tiny_reader, "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout)
    assert set(answer) >= {"text", "score", "found", "document", "start", "end", "context", "passages"}
    assert answer["passages"] and answer["passages"][0]["document"] == SEED_ID


def test_empty_question_exits_with_a_message(tmp_path, corpus, tiny_reader):
    result = run_qa("ask", "  ", "--index", str(tmp_path / "index"), "--corpus", str(corpus), "--reader", tiny_reader)
    assert result.returncode == 2
    assert "Please type a question" in result.stderr


def test_index_reports_skipped_files(tmp_path, tiny_reader):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "ok.md").write_text("Fine text about herons.")
    (folder / "bad.txt").write_bytes(b"\x00\x01bin\x00ary" * 10)
    result = run_qa("index", str(folder), "--index", str(tmp_path / "index"), "--reader", tiny_reader)
    assert result.returncode == 0
    assert "skipped: bad.txt" in result.stderr and "1 documents" in result.stdout


def test_eval_against_an_empty_index_is_refused(tmp_path):
    result = subprocess.run([sys.executable, "-m", "qa", "eval", str(PROJECT_ROOT / "seeds" / "questions.jsonl"),
                             "--index", str(tmp_path / "empty")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "holds no documents" in result.stderr
    assert "exact_match" not in result.stdout
