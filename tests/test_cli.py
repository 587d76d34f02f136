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


def test_eval_against_a_missing_or_empty_index_is_refused(tmp_path):
    questions = str(PROJECT_ROOT / "seeds" / "questions.jsonl")
    result = run_qa("eval", questions, "--index", str(tmp_path / "missing"))
    assert_refused(result, "no index in")
    assert not (tmp_path / "missing").exists()
    empty = tmp_path / "empty"
    from qa.index import Fingerprint, IndexStore

    IndexStore(empty).reset(Fingerprint("an embedder", 4, {}))  # an index that holds nothing
    assert IndexStore(empty).exists()
    result = run_qa("eval", questions, "--index", str(empty))
    assert result.returncode == 2 and "holds no documents" in result.stderr
    assert "exact_match" not in result.stdout


# -- failures: one line on stderr, a non-zero exit, no traceback, nothing written ------------------------------
def assert_refused(result, *words):
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and all(w in lines[0] for w in words), result.stderr[-2000:]


def test_index_of_a_missing_path_is_refused_and_writes_nothing(tmp_path):
    index = tmp_path / "index"
    result = run_qa("index", str(tmp_path / "no" / "such.txt"), "--index", str(index))
    assert_refused(result, "such.txt", "no such file or folder")
    assert not index.exists()


def test_index_of_a_folder_without_supported_files_is_refused(tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    (folder / "cat.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    (folder / "notes.xyz").write_text("text in a file type nobody reads")
    index = tmp_path / "index"
    result = run_qa("index", str(folder), "--index", str(index))
    assert_refused(result, "pictures", "no supported files")
    result = run_qa("index", str(folder / "notes.xyz"), "--index", str(index))
    assert_refused(result, "notes.xyz", "unsupported file type")
    assert not index.exists()


def test_index_of_only_unreadable_files_fails(tmp_path, tiny_reader):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "bad.txt").write_bytes(b"\x00\x01bin\x00ary" * 10)
    result = run_qa("index", str(folder), "--index", str(tmp_path / "index"), "--reader", tiny_reader)
    assert_refused(result, "nothing was indexed")
    assert "skipped: bad.txt" in result.stderr


def test_ask_with_a_mistyped_index_folder_creates_nothing(tmp_path):
    index = tmp_path / "indx"
    result = run_qa("ask", "Who chaired the session?", "--index", str(index))
    assert_refused(result, "no index in", "indx")
    assert not index.exists()
    result = run_qa("ask", "Who chaired the session?", "--index", str(index), "--json")
    assert result.returncode == 2 and "no index in" in json.loads(result.stdout)["error"]


def test_ask_json_reports_errors_as_json(tmp_path, corpus, tiny_reader):
    result = run_qa("ask", "", "--json", "--index", str(tmp_path / "index"), "--corpus", str(corpus),
                    "--reader", tiny_reader)
    assert result.returncode == 2
    answer = json.loads(result.stdout)
    assert answer["found"] is False and "Please type a question" in answer["error"]


def test_eval_of_a_missing_or_malformed_question_file_is_refused(tmp_path):
    result = run_qa("eval", str(tmp_path / "missing.jsonl"))
    assert_refused(result, "missing.jsonl", "no such question file")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": 1, "question": "Who?", "answers": ["A"]}\nthis is not JSON\n')
    assert_refused(run_qa("eval", str(broken)), "broken.jsonl:2", "not a question row")
    squad = tmp_path / "squad.json"
    squad.write_text('{"version": "1.1"}')
    assert_refused(run_qa("eval", str(squad)), "squad.json", "not a question file")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert_refused(run_qa("eval", str(empty)), "holds no questions")


def test_a_bare_string_answer_counts_as_one_answer(tmp_path):
    from qa.evaluate import read_questions

    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "a", "question": "Who chaired?", "answers": "Emomali Rahmon"}\n'
                    '{"id": "b", "question": "Who won?", "answers": []}\n')
    questions, documents = read_questions(path)
    assert documents is None
    assert [q.answers for q in questions] == [["Emomali Rahmon"], []]


def test_index_restores_a_removed_file_named_explicitly(tmp_path, corpus, tiny_reader):
    from qa import QA

    index = tmp_path / "index"
    assert run_qa("index", str(corpus), "--index", str(index), "--reader", tiny_reader).returncode == 0
    QA.from_paths([corpus], index_dir=index, reader=tiny_reader, quantize=False).remove(SEED_ID)
    # Naming the folder keeps the user's removal; naming the file brings it back.
    result = run_qa("index", str(corpus), "--index", str(index), "--reader", tiny_reader)
    assert_refused(result, "nothing was indexed")
    assert f"skipped: {SEED_ID} was removed earlier" in result.stderr
    result = run_qa("index", str(corpus / SEED_ID), "--index", str(index), "--reader", tiny_reader)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"restored: {SEED_ID}" in result.stderr and "1 documents" in result.stdout


def test_start_up_logs_no_faiss_import_noise():
    code = "import logging; logging.basicConfig(level=logging.DEBUG); import numpy, qa.index; "
    code += "qa.index.Segment('s', numpy.zeros((1, 4), 'float32'), numpy.zeros(1, 'int64')).top(numpy.ones((1, 4), "
    code += "'float32'), 1, numpy.zeros(0, 'int64'))"  # a search imports faiss
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ModuleNotFoundError" not in result.stderr and "faiss.loader" not in result.stderr, result.stderr


def test_serve_honours_qa_host_and_qa_port(tmp_path, corpus, tiny_reader):
    import os
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "QA_PORT": str(port), "QA_HOST": "127.0.0.1", "QA_READER": tiny_reader,
           "QA_CORPUS": str(corpus), "QA_INDEX_DIR": str(tmp_path / "index"), "GRADIO_ANALYTICS_ENABLED": "False"}
    process = subprocess.Popen([sys.executable, "-m", "qa", "serve"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "Serving on" in line:
                break
        assert f"Serving on http://127.0.0.1:{port}" in "".join(lines), "".join(lines)[-2000:]
        assert "ModuleNotFoundError" not in "".join(lines)
    finally:
        process.terminate()
        process.wait(timeout=30)
