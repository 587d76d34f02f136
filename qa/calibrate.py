"""Fit the answer scorer (qa/aggregate.py) end to end, on questions derived from SQuAD train only.

The set imitates what a user meets: a corpus of whole train articles; questions whose paragraph is in the
corpus (answerable); questions whose paragraph was left out of it (the documents do not hold the answer); and
questions edited so that their own paragraph no longer answers them (negated, a name swapped, a year the
paragraph never states: SQuAD 2.0's kinds, made by qa/train.py's generators). Every question goes through the
product's own retrieval and reading; each candidate answer is labelled with its SQuAD F1 against the gold answer
(0 for an unanswerable question). A logistic regression on the candidates' features, with those F1s as soft
labels, is the scorer: its probability is the answer's expected F1. The threshold that maximises F1 on held-out
articles, and the confident band (answers right, F1 >= 0.5, nine times in ten), are recorded beside it.

    python -m qa.calibrate --train-file ../shared/data/squad/train-v1.1.json.gz --out qa/models/reader
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.aggregate import FEATURES, SCORER_FILE, AnswerScorer, candidates
from qa.evaluate import EvalQuestion, f1_score
from qa.load import Document, make_document
from qa.read import CALIBRATION_FILE, Calibration

RIGHT_F1 = 0.5  # an answer at least this close to the gold answer counts as right (for the confident band)
# Of the questions a user asks, the share the documents do not answer: an assumption of the product (people ask
# their documents what they expect them to hold), not a property of any data set. It sets the threshold.
UNANSWERABLE_SHARE = 0.2


@dataclass
class DerivedSet:
    documents: list[Document]
    questions: list[EvalQuestion]
    kinds: list[str]  # per question: answerable, absent (paragraph left out) or edited
    articles: list[str]  # per question: its article, for held-out splits


DERIVED_ARTICLES, DERIVED_SEED = 60, 13  # derived_set's defaults: the articles the answer scorer is fitted on


def derived_articles(titles: list[str], articles: int, rng: random.Random) -> set[str]:
    """The train articles a derived set is made of (the embedder's training leaves the same ones out)."""
    ordered = sorted(set(titles))
    return set(rng.sample(ordered, min(articles, len(ordered))))


def derived_set(train_file: str | Path, articles: int = DERIVED_ARTICLES, answerable: int = 3000, absent: int = 800,
                edited: int = 800, absent_share: float = 0.15, seed: int = DERIVED_SEED) -> DerivedSet:
    """A corpus of `articles` train articles with `absent_share` of their paragraphs left out, and questions."""
    from qa.squad import read_squad
    from qa.training.negatives import add_impossible_condition, negate_question, swap_name

    squad = read_squad(train_file)
    rng = random.Random(seed)
    chosen = derived_articles(squad.titles, articles, rng)
    paragraphs = [i for i, t in enumerate(squad.titles) if t in chosen]
    left_out = set(rng.sample(paragraphs, int(len(paragraphs) * absent_share)))
    documents = [make_document(f"{squad.titles[i]}/{i:05d}", squad.contexts[i], source=str(train_file))
                 for i in paragraphs if i not in left_out]
    pool = [q for q in squad.questions if q.context_index in paragraphs and q.answers and q.answer_starts[0] >= 0]
    present = [q for q in pool if q.context_index not in left_out]
    missing = [q for q in pool if q.context_index in left_out]
    rng.shuffle(present)
    rng.shuffle(missing)
    rows: list[tuple[EvalQuestion, str, str]] = []
    for q in present[:answerable]:
        rows.append((EvalQuestion(q.id, q.question, list(q.answers)), "answerable", squad.titles[q.context_index]))
    for q in missing[:absent]:
        rows.append((EvalQuestion(q.id + "-absent", q.question, []), "absent", squad.titles[q.context_index]))
    editors = [lambda q, c: negate_question(q.question),
               lambda q, c: swap_name(q.question, c, q.answer_starts[0], q.answer_starts[0] + len(q.answers[0]), rng),
               lambda q, c: add_impossible_condition(q.question, c, rng)]
    made = 0
    for q in present[answerable:]:
        if made >= edited:
            break
        text = rng.choice(editors)(q, squad.contexts[q.context_index])
        if text:
            rows.append((EvalQuestion(q.id + "-edited", text, []), "edited", squad.titles[q.context_index]))
            made += 1
    rng.shuffle(rows)
    return DerivedSet(documents, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])


def harvest(bot, questions: list[EvalQuestion], batch_size: int = 16, progress=None) -> list[dict]:
    """Per question, its candidates' features and labels, read exactly as QA.ask reads."""
    records = []
    for offset in range(0, len(questions), batch_size):
        batch = questions[offset : offset + batch_size]
        texts = [bot._check(q.question) for q in batch]
        retrieved = bot.retriever.run(bot.index, texts, None)
        readings = bot._read(texts, retrieved)
        for q, text, hits, reading in zip(batch, texts, retrieved, readings):
            found = candidates(text, reading, hits)
            records.append({"id": q.id, "answerable": bool(q.answers),
                            "features": [[c.features[name] for name in FEATURES] for c in found],
                            "f1": [f1_score(c.text, q.answers) if q.answers else 0.0 for c in found],
                            "margin": [c.span.margin for c in found],
                            "confidence": [c.probability for c in found],
                            "passage": [c.span.passage for c in found]})
        if progress:
            progress(len(batch))
    return records


def fit_logistic(x: np.ndarray, y: np.ndarray, iterations: int = 50) -> tuple[float, float]:
    """1-D logistic regression by Newton's method; y may be soft (an F1 in [0, 1])."""
    w = np.zeros(2)
    features = np.stack([x, np.ones_like(x)], axis=1)
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-np.clip(features @ w, -60, 60)))
        gradient = features.T @ (p - y)
        hessian = features.T @ (features * (p * (1 - p))[:, None]) + 1e-6 * np.eye(2)
        w -= np.linalg.solve(hessian, gradient)
    return float(w[0]), float(w[1])


def fit_reader_calibration(records: list[dict], first: int) -> Calibration:
    """The reader's own map from its best margin over the first `first` passages to that span's F1 (0 for an
    unanswerable question): what QA uses to decide whether the first passages settle a question."""
    margins, targets = [], []
    for r in records:
        early = [i for i, p in enumerate(r["passage"]) if p < first]
        best = max(early, key=lambda i: r["margin"][i]) if early else None
        margins.append(r["margin"][best] if best is not None else -30.0)
        targets.append(r["f1"][best] if best is not None else 0.0)
    return Calibration(*fit_logistic(np.array(margins), np.array(targets)))


def write_calibration(folder: str | Path, calibration: Calibration, about: dict) -> None:
    """calibration.json beside the reader, saying what it was fitted on (runtime, precision, data)."""
    payload = {"slope": calibration.slope, "intercept": calibration.intercept, "target": "F1 of the best span", **about}
    (Path(folder) / CALIBRATION_FILE).write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")


def _matrix(records: list[dict], features: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Candidate features and their F1 against the gold answer (0 for an unanswerable question)."""
    columns = [FEATURES.index(name) for name in features]
    rows = [f for r in records for f in r["features"]]
    x = np.array(rows, dtype=np.float64).reshape(-1, len(FEATURES))[:, columns]
    return x, np.array([f1 for r in records for f1 in r["f1"]], dtype=np.float64)


def fit_scorer(records: list[dict], features: tuple[str, ...] = FEATURES, c: float = 1.0) -> AnswerScorer:
    """Logistic regression on soft labels (each candidate is right with weight F1, wrong with weight 1 - F1), so
    the probability is an expected F1: a partly right answer counts in part, and a half-right short span is not
    preferred to the whole answer as it would be with "right = F1 >= 0.5"."""
    from sklearn.linear_model import LogisticRegression

    x, f1 = _matrix(records, features)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    model = LogisticRegression(C=c, max_iter=2000).fit(
        np.concatenate([z, z]), np.concatenate([np.ones(len(f1)), np.zeros(len(f1))]),
        sample_weight=np.concatenate([f1, 1 - f1]))
    return AnswerScorer(tuple(features), tuple(map(float, mean)), tuple(map(float, scale)),
                        tuple(map(float, model.coef_[0])), float(model.intercept_[0]))


def choose(record: dict, scorer: AnswerScorer | None) -> tuple[float, float]:
    """(probability, F1) of the candidate a question would be answered with: the scorer's most probable one, or
    without a scorer the reader's best margin with its calibrated confidence; (0, 0) when there is none."""
    if not record["features"]:
        return 0.0, 0.0
    if scorer is None:
        best = int(np.argmax(record["margin"]))
        return float(record["confidence"][best]), record["f1"][best]
    probabilities = scorer.predict(record["features"])
    best = int(np.argmax(probabilities))
    return float(probabilities[best]), record["f1"][best]


def decide(records: list[dict], scorer: AnswerScorer | None, threshold: float) -> list[tuple[float, float]]:
    """(probability, F1 of what is shown) per question: the chosen candidate, or nothing under the threshold."""
    out = []
    for r in records:
        p, f1 = choose(r, scorer)
        out.append((p, f1 if p >= threshold and r["features"] else (0.0 if r["answerable"] else 1.0)))
    return out


THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.05), 2)


def best_threshold(records: list[dict], scorer: AnswerScorer, unanswerable_share: float = UNANSWERABLE_SHARE) -> float:
    """The threshold (in steps of 0.05) under which declining gives the best F1 when `unanswerable_share` of the
    questions asked have no answer in the documents (the set's own mix says nothing about a user's)."""
    answerable = [r for r in records if r["answerable"]]
    unanswerable = [r for r in records if not r["answerable"]]

    def f1(t: float) -> float:
        parts = [(1 - unanswerable_share, answerable), (unanswerable_share, unanswerable)]
        return sum(w * np.mean([f for _, f in decide(rs, scorer, t)]) for w, rs in parts if rs)

    return float(max(THRESHOLDS, key=f1))


def confident_threshold(records: list[dict], scorer: AnswerScorer, precision: float = 0.9) -> float:
    """The lowest threshold (in steps of 0.05) from which the answers given are right `precision` of the time."""
    chosen = [choose(r, scorer) for r in records]
    for t in THRESHOLDS:
        above = [f1 >= RIGHT_F1 for p, f1 in chosen if p >= t]
        if above and np.mean(above) >= precision:
            return float(t)
    return float(THRESHOLDS[-1])


# -- the reader alone, on gold paragraphs (bench/reader.py, bench/select_reader.py) ----------------------------
def article_halves(squad, questions) -> tuple[list[int], list[int], str]:
    """Indices of the questions from every other article (titles sorted), of the rest, and a description."""
    titles = sorted(set(squad.titles))
    fit_titles = set(titles[::2])
    fit = [i for i, q in enumerate(questions) if squad.titles[q.context_index] in fit_titles]
    held = [i for i, q in enumerate(questions) if squad.titles[q.context_index] not in fit_titles]
    return fit, held, f"{len(fit)} questions from every other article ({len(fit_titles)} of {len(titles)})"


def fit_gold_calibration(questions, readings, fit: list[int]) -> Calibration:
    """Logistic map from the best span's margin to its F1 (0 for unanswerable questions), on `fit` only."""
    margins = np.array([readings[i].best.margin if readings[i].best else -30.0 for i in fit])
    correctness = np.array([0.0 if questions[i].is_impossible or not readings[i].best else
                            f1_score(readings[i].best.text, questions[i].answers) for i in fit])
    return Calibration(*fit_logistic(margins, correctness))


def fit_abstention(questions, readings, fit: list[int]) -> tuple[Calibration, float]:
    """Calibration and the threshold that maximise F1 on the questions listed in `fit`."""
    from qa.evaluate import squad_scores

    calibration = fit_gold_calibration(questions, readings, fit)
    fit_questions, fit_readings = [questions[i] for i in fit], [readings[i] for i in fit]
    best = max(np.arange(0.05, 0.96, 0.05),
               key=lambda t: squad_scores(fit_questions, v2_predictions(fit_readings, calibration, t))["f1"])
    return calibration, round(float(best), 2)


def v2_predictions(readings, calibration: Calibration, threshold: float) -> list[str]:
    out = []
    for r in readings:
        best = r.best
        out.append(best.text if best is not None and calibration(best.margin) >= threshold else "")
    return out


def held_out_summary(records: list[dict], data: DerivedSet, held_out: float, unanswerable_share: float) -> dict:
    """Fit on some articles, and on the others (held out) choose the thresholds and measure F1 per kind."""
    rng = random.Random(7)
    held_articles = set(rng.sample(sorted(set(data.articles)), int(len(set(data.articles)) * held_out)))
    fit = [r for r in records if r["article"] not in held_articles]
    held = [r for r in records if r["article"] in held_articles]
    scorer = fit_scorer(fit)
    threshold = best_threshold(held, scorer, unanswerable_share)
    shown = decide(held, scorer, threshold)

    def held_f1(kind: str | None = None) -> float:
        values = [f for (_, f), r in zip(shown, held) if kind is None or r["kind"] == kind]
        return round(100 * float(np.mean(values)), 2)

    return {"held_out_questions": len(held), "unanswerable_share_assumed": unanswerable_share,
               "threshold": threshold, "held_out_f1": held_f1(),
               "threshold_by_unanswerable_share": {share: best_threshold(held, scorer, share)
                                                   for share in (0.05, 0.1, 0.15, 0.2, 0.3, 0.5)},
               "confident_threshold (right 90% of the time)": confident_threshold(held, scorer),
               **{f"held_out_f1_{kind}": held_f1(kind) for kind in ("answerable", "absent", "edited")}}


def _harvest_all(bot, questions: list[EvalQuestion], label: str) -> list[dict]:
    from tqdm.auto import tqdm

    started = time.perf_counter()
    with tqdm(total=len(questions), desc=label, unit="q") as bar:
        records = harvest(bot, questions, progress=bar.update)
    print(f"{label}: {len(records)} questions in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return records


def _load_records(path: Path | None) -> list[dict] | None:
    if path is None or not path.is_file():
        return None
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    from qa.answer import QA
    from qa.config import SHIPPED_READER, Config
    from qa.runtime import resolve_runtime

    parser = argparse.ArgumentParser(prog="python -m qa.calibrate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-file", required=True, help="SQuAD v1.1 train (JSON or .json.gz)")
    parser.add_argument("--out", default=str(SHIPPED_READER), help="reader folder to write the fitted files into")
    parser.add_argument("--records", default="", help="harvested candidates (JSONL): reused if present, else written")
    parser.add_argument("--articles", type=int, default=60)
    parser.add_argument("--answerable", type=int, default=3000)
    parser.add_argument("--absent", type=int, default=800)
    parser.add_argument("--edited", type=int, default=800)
    parser.add_argument("--held-out", type=float, default=0.25, help="share of articles held out for the threshold")
    parser.add_argument("--unanswerable-share", type=float, default=UNANSWERABLE_SHARE,
                        help="share of a user's questions that the documents do not answer (sets the threshold)")
    parser.add_argument("--reader-calibration", action="store_true",
                        help="first refit the reader's calibration.json (then read every question again with it)")
    args = parser.parse_args(argv)

    data = derived_set(args.train_file, args.articles, args.answerable, args.absent, args.edited)
    records_path = Path(args.records) if args.records else None
    records = _load_records(records_path)
    bot = None
    if records is None:
        bot = QA(reader=args.out, corpus=[], index_dir=tempfile.mkdtemp(prefix="qa-calibrate-"))
        bot.add_documents(data.documents)
        records = _harvest_all(bot, data.questions, "read")
        if args.reader_calibration:
            calibration = fit_reader_calibration(records, bot.config.read_first)
            write_calibration(args.out, calibration, {
                "fitted_on": f"{len(records)} questions derived from SQuAD train ({Path(args.train_file).name}, "
                             f"{args.articles} articles as the corpus; qa/calibrate.py)",
                "runtime": bot.reader.runtime, "precision": "int8" if bot.reader.quantized else "fp32",
                "passages": f"best span of the first {bot.config.read_first} retrieved"})
            bot.reader.calibration = calibration
            records = _harvest_all(bot, data.questions, "read again")  # settling follows the new calibration
        if records_path:
            records_path.write_text("".join(json.dumps(r) + "\n" for r in records))
    for record, kind, article in zip(records, data.kinds, data.articles):
        record["kind"], record["article"] = kind, article
    summary = held_out_summary(records, data, args.held_out, args.unanswerable_share)
    final = fit_scorer(records)  # the shipped scorer sees every article; the threshold comes from held-out ones
    config = Config()
    about = {"reader": Path(args.out).name,
             "runtime": f"{resolve_runtime(config.runtime, config.device)}, {'int8' if config.quantize else 'fp32'}",
             "train_file": Path(args.train_file).name, "articles": args.articles,
             "questions": {k: data.kinds.count(k) for k in ("answerable", "absent", "edited")},
             "labels": "F1 against the gold answer (soft)", "confident_when_right_f1_at_least": RIGHT_F1,
             **summary}
    scorer = AnswerScorer(final.features, final.mean, final.scale, final.weights, final.intercept, about)
    scorer.save(Path(args.out) / SCORER_FILE)
    print(json.dumps(about, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
