import gzip
import json
import subprocess
import sys

import numpy as np
import pytest

from qa.evaluate import (EvalQuestion, exact_match, f1_score, normalize_answer, question_type, read_gold_paragraphs,
                         read_questions, run_eval, squad_scores, window_latencies)
from qa.report import write_html_report, write_rows
from qa.config import PROJECT_ROOT


def test_normalisation_follows_the_squad_rules():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("an apple, a pear and THE plum") == "apple pear and plum"


@pytest.mark.parametrize("prediction,gold,em,f1", [
    ("Emomali Rahmon", ["President Emomali Rahmon", "Emomali Rahmon"], 1.0, 1.0),
    ("President Rahmon", ["Emomali Rahmon"], 0.0, 0.5),
    ("", ["Emomali Rahmon"], 0.0, 0.0),
    ("", [], 1.0, 1.0),
    ("Kabul", [], 0.0, 0.0),
    ("the", ["a"], 1.0, 1.0),
])
def test_exact_match_and_f1(prediction, gold, em, f1):
    assert exact_match(prediction, gold) == em
    assert f1_score(prediction, gold) == pytest.approx(f1)


def test_question_types():
    assert question_type("Who chaired the session?") == "who"
    assert question_type("In what year was it founded?") == "what"
    assert question_type("Name the capital.") == "other"


def test_seed_question_set_is_well_formed():
    questions, corpus = read_questions(PROJECT_ROOT / "seeds" / "questions.jsonl")
    assert corpus is None
    assert len(questions) >= 30
    assert sum(1 for q in questions if not q.answers) >= 6
    article = (PROJECT_ROOT / "seeds" / "000_969414e8ff3677b6.txt").read_text(encoding="utf-8")
    for q in questions:
        for answer in q.answers:
            assert answer in article, (q.id, answer)  # every accepted answer is a real span
    assert len({q.id for q in questions}) == len(questions)


def test_squad_files_become_a_corpus(tmp_path):
    squad = {"version": "1.1", "data": [{"title": "T", "paragraphs": [
        {"context": "Alpha was born in 1901 in Rome.", "qas": [
            {"id": "q1", "question": "Where was Alpha born?", "answers": [{"text": "Rome", "answer_start": 26}]}]},
        {"context": "Beta likes tea.", "qas": [{"id": "q2", "question": "What does Beta like?", "answers": [],
                                                 "is_impossible": True}]}]}]}
    path = tmp_path / "tiny.json.gz"
    with gzip.open(path, "wt") as handle:
        json.dump(squad, handle)
    questions, corpus = read_questions(path)
    assert [d.id for d in corpus] == ["T/000", "T/001"]
    assert questions[0].answers == ["Rome"] and questions[1].answers == []


def test_a_reader_on_its_own_over_gold_paragraphs(tmp_path, tiny_reader):
    from qa.read import Reader
    from qa.squad import read_squad
    from tests.squad_builders import QUESTIONS, write_squad

    squad = read_squad(write_squad(tmp_path / "tiny.json"))
    reader = Reader(tiny_reader, max_seq_length=64, doc_stride=16)
    readings = read_gold_paragraphs(reader, squad, squad.questions, batch=4)
    assert len(readings) == len(QUESTIONS)
    for question, reading in zip(squad.questions, readings):  # each read its own paragraph only
        assert all(span.passage == 0 and span.text in squad.contexts[question.context_index] for span in reading.spans)
    gold = [q.answers[0] for q in squad.questions]
    assert squad_scores(squad.questions, gold) == {"questions": 6, "exact_match": 100.0, "f1": 100.0}
    squad.questions[0].is_impossible = True  # unanswerable: right only when nothing is answered
    scores = squad_scores(squad.questions, [""] + gold[1:3] + ["no", "no", "no"])
    assert scores["exact_match"] == 50.0 and scores["unanswerable_accuracy"] == 100.0
    assert scores["answerable_f1"] == 40.0 and scores["no_answer_accuracy"] == 100.0
    latencies = window_latencies({"onnx": reader, "torch": Reader(tiny_reader, runtime="torch")}, runs=3, length=32)
    assert set(latencies) == {"onnx", "torch"} and all(ms > 0 for ms in latencies.values())


def test_eval_reports_metrics_resumes_and_writes_reports(plumbing_bot, tmp_path):
    questions = [EvalQuestion("a", "Who chaired the session?", ["Emomali Rahmon"]),
                 EvalQuestion("b", "Who won the 2018 World Cup?", []),
                 EvalQuestion("c", "When did Taliban fighters sweep into Kabul?", ["August 15"])]
    progress = tmp_path / "progress.jsonl"
    first = run_eval(plumbing_bot, questions[:2], progress_file=progress)
    assert len(progress.read_text().splitlines()) == 2
    report = run_eval(plumbing_bot, questions, progress_file=progress)  # resumes: only "c" is asked
    assert len(progress.read_text().splitlines()) == 3
    assert [r.id for r in report.rows] == ["a", "b", "c"]
    assert report.rows[0] == first.rows[0]
    metrics = report.metrics
    for key in ("exact_match", "f1", "answerable_f1", "unanswerable_accuracy", "no_answer_accuracy",
                "recall@4", "latency_p50_ms", "latency_p95_ms", "f1_by_type"):
        assert key in metrics
    assert metrics["recall@4"] == 100.0  # the seed article has just a few chunks: both answers are retrieved
    # Retrieval is also ranked on its own, 10 deep: the gold chunk's rank is known, the no-answer row has none.
    assert report.rows[1].gold_rank is None and all(1 <= report.rows[i].gold_rank <= 4 for i in (0, 2))
    recalls = [metrics[f"retrieval_recall@{k}"] for k in (1, 3, 5, 10)]
    assert recalls == sorted(recalls) and recalls[-1] == 100.0
    write_rows(report.rows, tmp_path / "rows.csv")
    assert (tmp_path / "rows.csv").read_text().count("\n") == 4
    write_html_report(report, tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4 and "Who chaired the session?" in page
    assert "Where the points go" in page


def _row(id_, gold, found, f1, retrieved=True, passage_gold=False, score=0.5, candidate_f1=None):
    from qa.evaluate import Row, outcome_of

    row = Row(id_, "q", gold, "x" if found else "", found, score, f1, f1, retrieved if gold else None, 1.0, "what",
              candidate_f1=f1 if candidate_f1 is None else candidate_f1, candidate_passage_gold=passage_gold)
    row.outcome = outcome_of(row)
    return row


def test_breakdown_puts_every_lost_point_in_one_place():
    from qa.evaluate import breakdown

    rows = [_row("right", ["a"], True, 1.0, passage_gold=True), _row("declined", ["a"], False, 0.0),
            _row("missed", ["a"], True, 0.0, retrieved=False), _row("other", ["a"], True, 0.0),
            _row("span", ["a"], True, 0.5, passage_gold=True), _row("made up", [], True, 0.0),
            _row("honest", [], False, 1.0)]
    assert [r.outcome for r in rows] == ["right", "declined_answerable", "not_retrieved", "other_passage",
                                         "wrong_span", "answered_unanswerable", "declined_unanswerable"]
    parts = breakdown(rows)
    assert sum(p["questions_%"] for p in parts.values()) == pytest.approx(100, abs=0.05)
    f1 = 100 * sum(r.f1 for r in rows) / len(rows)
    assert sum(p["f1_points_lost"] for p in parts.values()) == pytest.approx(100 - f1, abs=0.05)
    assert parts["wrong_span"]["f1_points_lost"] == pytest.approx(100 * 0.5 / 7, abs=0.01)


def test_confidence_ranking_figures():
    from qa.evaluate import auroc, coverage_curve

    assert auroc(np.array([0.9, 0.8, 0.3, 0.1]), np.array([True, True, False, False])) == 1.0
    assert auroc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([True, True, False, False])) == 0.0
    assert auroc(np.array([0.5, 0.5]), np.array([True, False])) == 0.5
    rows = [_row(str(i), ["a"], True, f1, score=s) for i, (f1, s) in enumerate([(1, .9), (1, .8), (0, .7), (0, .2)])]
    assert coverage_curve(rows, (50, 100)) == [(50, 100.0), (100, 50.0)]


@pytest.mark.slow
def test_cli_eval_on_the_seed_questions(tmp_path, tiny_reader, corpus):
    out = tmp_path / "metrics.json"
    result = subprocess.run(
        [sys.executable, "-m", "qa", "eval", str(PROJECT_ROOT / "seeds" / "questions.jsonl"), "--index",
         str(tmp_path / "index"), "--reader", tiny_reader, "--json", str(out), "--report", str(tmp_path / "r.html"),
         "--limit", "5", "--corpus", str(corpus)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics["questions"] == 5
    assert (tmp_path / "r.html").is_file() and out.with_suffix(".rows.json").is_file()
