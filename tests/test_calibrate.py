"""Fitting the answer scorer and the reader's calibration on questions derived from SQuAD train."""

import json

import numpy as np
import pytest

from qa.aggregate import FEATURES
from qa.calibrate import (best_threshold, choose, decide, derived_set, fit_logistic, fit_reader_calibration,
                          fit_scorer, harvest, write_calibration)
from qa.config import PROJECT_ROOT
from qa.evaluate import auroc, read_questions
from qa.read import Calibration

TRAIN = PROJECT_ROOT.parent / "shared" / "data" / "squad" / "train-v1.1.json.gz"


@pytest.fixture(scope="module")
def small_set():
    if not TRAIN.is_file():
        pytest.skip(f"{TRAIN} is not here")
    return derived_set(TRAIN, articles=3, answerable=40, absent=15, edited=15, absent_share=0.2)


def test_derived_set_leaves_paragraphs_out_and_edits_questions(small_set):
    kinds = small_set.kinds
    assert kinds.count("answerable") == 40 and kinds.count("absent") == 15 and kinds.count("edited") == 15
    corpus = {d.text for d in small_set.documents}
    assert len(set(small_set.articles)) <= 3
    for question, kind in zip(small_set.questions, kinds):
        if kind == "answerable":
            assert question.answers and any(question.answers[0] in text for text in corpus)
        else:
            assert question.answers == []
    # an absent question's paragraph is really missing: none of the corpus paragraphs is its own
    from qa.squad import read_squad

    squad = read_squad(TRAIN)
    by_id = {q.id: q for q in squad.questions}
    for question, kind in zip(small_set.questions, kinds):
        if kind == "absent":
            assert squad.contexts[by_id[question.id.removesuffix("-absent")].context_index] not in corpus
        if kind == "edited":
            assert question.question != by_id[question.id.removesuffix("-edited")].question


def test_fit_logistic_recovers_a_known_slope():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 3, 20000)
    y = (rng.random(20000) < 1 / (1 + np.exp(-(0.8 * x - 1.0)))).astype(float)
    slope, intercept = fit_logistic(x, y)
    assert slope == pytest.approx(0.8, abs=0.05) and intercept == pytest.approx(-1.0, abs=0.08)


@pytest.fixture(scope="module")
def seed_records(shipped_bot):
    questions, _ = read_questions(PROJECT_ROOT / "seeds" / "questions.jsonl")
    return harvest(shipped_bot, questions)


def test_harvest_labels_every_candidate(seed_records):
    assert len(seed_records) == 40
    for record in seed_records:
        n = len(record["features"])
        assert all(len(row) == len(FEATURES) for row in record["features"])
        assert len(record["f1"]) == len(record["margin"]) == len(record["passage"]) == n
        if not record["answerable"]:
            assert record["f1"] == [0.0] * n


def test_a_scorer_fitted_on_readings_ranks_right_answers_first(seed_records):
    scorer = fit_scorer(seed_records)
    chosen = [choose(r, scorer) for r in seed_records]
    value = auroc(np.array([p for p, _ in chosen]), np.array([f1 >= 0.5 for _, f1 in chosen]))
    assert value is not None and value > 0.8
    share = np.mean([not r["answerable"] for r in seed_records])  # so the weighted F1 is the plain one
    threshold = best_threshold(seed_records, scorer, share)
    f1_at = {t: np.mean([f1 for _, f1 in decide(seed_records, scorer, t)]) for t in (0.05, threshold, 0.95)}
    assert f1_at[threshold] >= max(f1_at[0.05], f1_at[0.95])


def test_reader_calibration_is_written_with_what_it_was_fitted_on(seed_records, tmp_path):
    calibration = fit_reader_calibration(seed_records, first=2)
    assert calibration.slope > 0, "a larger margin means a likelier right answer"
    write_calibration(tmp_path, calibration, {"runtime": "onnx", "precision": "int8", "fitted_on": "seed"})
    data = json.loads((tmp_path / "calibration.json").read_text())
    assert data["runtime"] == "onnx" and data["precision"] == "int8"
    assert Calibration.from_folder(str(tmp_path)) == calibration
