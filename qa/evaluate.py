"""Batch evaluation: SQuAD-style exact match and F1, no-answer accuracy, retrieval recall, latency, report.

Question sets are JSONL ({"id", "question", "answers": [...]} per line; an empty list means the documents do not
hold the answer) or SQuAD JSON files, whose paragraphs then become the corpus.
"""

from __future__ import annotations

import collections
import json
import re
import statistics
import string
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from qa.load import Document, make_document
from qa.squad import SquadQuestion, SquadSet, read_squad

# -- the official SQuAD normalisation, written out --------------------------------------------------------------
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation and the articles a/an/the, squeeze whitespace (as the SQuAD script does)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: list[str]) -> float:
    if not gold:  # unanswerable: right only when nothing is answered
        return float(prediction == "")
    return max(float(normalize_answer(prediction) == normalize_answer(g)) for g in gold)


def f1_score(prediction: str, gold: list[str]) -> float:
    if not gold:
        return float(prediction == "")

    def one(reference: str) -> float:
        predicted_tokens = normalize_answer(prediction).split()
        reference_tokens = normalize_answer(reference).split()
        if not predicted_tokens or not reference_tokens:
            return float(predicted_tokens == reference_tokens)
        common = collections.Counter(predicted_tokens) & collections.Counter(reference_tokens)
        overlap = sum(common.values())
        if overlap == 0:
            return 0.0
        precision, recall = overlap / len(predicted_tokens), overlap / len(reference_tokens)
        return 2 * precision * recall / (precision + recall)

    return max(one(g) for g in gold)


def question_type(question: str) -> str:
    words = question.lower().split()
    for word in words[:3] + words:
        word = word.strip("?,.'\"")
        if word in ("what", "who", "when", "where", "why", "how", "which", "whom", "whose"):
            return {"whom": "who", "whose": "who"}.get(word, word)
    return "other"


# -- question sets ----------------------------------------------------------------------------------------------
@dataclass
class EvalQuestion:
    id: str
    question: str
    answers: list[str]  # empty: not answerable from the documents


def read_questions(path: str | Path) -> tuple[list[EvalQuestion], list[Document] | None]:
    """Questions, plus the corpus when the file is SQuAD JSON (None for JSONL: use the configured corpus)."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith((".json", ".json.gz")):
        squad = read_squad(path)
        counts: dict[str, int] = collections.Counter()
        ids = []
        for title in squad.titles:
            ids.append(f"{title}/{counts[title]:03d}")
            counts[title] += 1
        documents = [make_document(doc_id, text, source=str(path)) for doc_id, text in zip(ids, squad.contexts)]
        questions = [EvalQuestion(q.id, q.question, [] if q.is_impossible else q.answers) for q in squad.questions]
        return questions, documents
    questions = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                answers = row.get("answers", [])
                answers = [answers] if isinstance(answers, str) else list(answers)  # one answer written bare
                if not isinstance(row["question"], str) or not all(isinstance(a, str) for a in answers):
                    raise TypeError("question and answers must be text")
                questions.append(EvalQuestion(str(row["id"]), row["question"], answers))
            except (ValueError, KeyError, TypeError) as error:
                raise ValueError(f"{path}:{number}: not a question row ({error})") from None
    return questions, None


# -- running ----------------------------------------------------------------------------------------------------
@dataclass
class Row:
    id: str
    question: str
    gold: list[str]
    prediction: str
    found: bool
    score: float
    exact: float
    f1: float
    retrieved_gold: bool | None  # answerable only: was a gold answer inside the retrieved chunks
    latency_ms: float
    type: str
    document: str = ""
    gold_rank: int | None = None  # answerable only: rank (from 1) of the first of RECALL_DEPTH chunks holding a
    #                               gold answer, 0 if none does; retrieval measured apart from what the reader saw
    candidate: str = ""  # the best guess, shown or not: the answer, else the first alternative of a declined one
    candidate_f1: float = 0.0  # its F1 (for an unanswerable question: 0, any guess is wrong)
    candidate_passage: int = 0  # rank (from 1) of the passage it came from among those retrieved; 0: no guess
    candidate_passage_gold: bool = False  # that passage holds a gold answer
    outcome: str = ""  # see OUTCOMES


RECALL_DEPTH = 10

# Where each question's points went, first matching row wins (see outcome_of).
OUTCOMES = {
    "right": "answered, F1 1",
    "declined_answerable": "answerable, but declined below the threshold",
    "not_retrieved": "answered, wrong: no passage read holds the gold answer",
    "other_passage": "answered, wrong: a passage read holds the gold answer, another passage's span won",
    "wrong_span": "answered from a passage holding the gold answer, wrong or partial span",
    "answered_unanswerable": "unanswerable, but answered",
    "declined_unanswerable": "unanswerable, declined",
}


def outcome_of(row: "Row") -> str:
    if not row.gold:
        return "answered_unanswerable" if row.found else "declined_unanswerable"
    if not row.found:
        return "declined_answerable"
    if row.f1 == 1.0:
        return "right"
    if not row.retrieved_gold:
        return "not_retrieved"
    return "wrong_span" if row.candidate_passage_gold else "other_passage"


def _candidate(answer) -> tuple[str, int, list[str]]:
    """The best guess of an answer, the rank of the passage it came from, and that passage's text."""
    if answer.found:
        text, document, start, end = answer.text, answer.document, answer.start, answer.end
    elif answer.alternatives:
        best = answer.alternatives[0]
        text, document, start, end = best.text, best.document, best.start, best.end
    else:
        return "", 0, []
    for rank, passage in enumerate(answer.passages, 1):
        if passage.document == document and passage.start <= start and end <= passage.end:
            return text, rank, [passage.text]
    return text, 0, []


@dataclass
class Report:
    metrics: dict
    rows: list[Row] = field(default_factory=list)


def _first_holding_gold(passages: list[str], gold: list[str]) -> int:
    """Rank (from 1) of the first passage holding a gold answer, both SQuAD-normalised; 0 if none does."""
    golds = [g for g in map(normalize_answer, gold) if g]
    return next((rank for rank, text in enumerate(passages, 1) if any(g in normalize_answer(text) for g in golds)), 0)


def _retrieval_hit(answer, gold: list[str]) -> bool | None:
    return _first_holding_gold([p.text for p in answer.passages], gold) > 0 if gold else None


def gold_ranks(bot, questions: list[EvalQuestion]) -> list[int | None]:
    """Per question, the rank (from 1) of the first of RECALL_DEPTH retrieved chunks that holds a gold answer;
    0 if none does, None for a question without answers."""
    ranked = bot.retriever.run(bot.index, [" ".join(q.question.split()) for q in questions], RECALL_DEPTH)
    return [_first_holding_gold([h.chunk.text for h in hits], q.answers) if q.answers else None
            for q, hits in zip(questions, ranked)]


def run_eval(bot, questions: list[EvalQuestion], batch_size: int = 1, progress_file: str | Path | None = None,
             ) -> Report:
    """Ask every question (batch_size 1: true per-question latency; more: amortised, faster overall).

    With progress_file, finished rows are appended as they come, and a rerun skips them: an interrupted
    evaluation resumes where it stopped.
    """
    done: dict[str, Row] = {}
    if progress_file and Path(progress_file).exists():
        for line in Path(progress_file).read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = Row(**json.loads(line))
                done[row.id] = row
    todo = [q for q in questions if q.id not in done]
    sink = open(progress_file, "a", encoding="utf-8") if progress_file else None
    try:
        with tqdm(total=len(questions), initial=len(questions) - len(todo), desc="eval", unit="q") as bar:
            for offset in range(0, len(todo), batch_size):
                batch = todo[offset : offset + batch_size]
                started = time.perf_counter()
                answers = bot.ask_many([q.question for q in batch])
                latency = (time.perf_counter() - started) * 1000 / len(batch)
                ranks = gold_ranks(bot, batch) if bot.index.chunks else [None] * len(batch)
                for q, a, rank in zip(batch, answers, ranks):
                    prediction = a.text if a.found else ""
                    candidate, passage, passage_text = _candidate(a)
                    row = Row(q.id, q.question, q.answers, prediction, a.found, a.score,
                              exact_match(prediction, q.answers), f1_score(prediction, q.answers),
                              _retrieval_hit(a, q.answers), latency, question_type(q.question), a.document, rank,
                              candidate, f1_score(candidate, q.answers) if q.answers else 0.0, passage,
                              bool(q.answers) and _first_holding_gold(passage_text, q.answers) > 0)
                    row.outcome = outcome_of(row)
                    done[q.id] = row
                    if sink:
                        sink.write(json.dumps(asdict(row)) + "\n")
                if sink:
                    sink.flush()
                bar.update(len(batch))
    finally:
        if sink:
            sink.close()
    rows = [done[q.id] for q in questions]
    return Report(summarise(rows, top_k=bot.config.top_k), rows)


def summarise(rows: list[Row], top_k: int) -> dict:
    def mean(values) -> float | None:
        values = list(values)
        return round(100 * float(np.mean(values)), 2) if values else None

    answerable = [r for r in rows if r.gold]
    unanswerable = [r for r in rows if not r.gold]
    latencies = np.array([r.latency_ms for r in rows]) if rows else np.zeros(1)
    return {
        "questions": len(rows),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "exact_match": mean(r.exact for r in rows),
        "f1": mean(r.f1 for r in rows),
        "answerable_exact_match": mean(r.exact for r in answerable),
        "answerable_f1": mean(r.f1 for r in answerable),
        "unanswerable_accuracy": mean(not r.found for r in unanswerable),  # abstained when it should
        "no_answer_accuracy": mean((not r.found) == (not r.gold) for r in rows),  # found/not-found decision
        f"recall@{top_k}": mean(bool(r.retrieved_gold) for r in answerable),  # what the reader was given
        **{f"retrieval_recall@{k}": mean(0 < r.gold_rank <= k for r in answerable if r.gold_rank is not None)
           for k in (1, 3, 5, RECALL_DEPTH)},
        "latency_p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "latency_p95_ms": round(float(np.percentile(latencies, 95)), 2),
        "f1_by_type": {t: mean(r.f1 for r in rows if r.type == t) for t in sorted({r.type for r in rows})},
        "answered": mean(r.found for r in rows),
        "answerable_answered": mean(r.found for r in answerable),
        "breakdown": breakdown(rows),
        **selective(rows),
    }


def breakdown(rows: list[Row]) -> dict:
    """Per outcome: share of questions, and F1 points lost there (100 - F1 is the sum of the losses)."""
    if not rows:
        return {}
    out = {}
    for name in OUTCOMES:
        inside = [r for r in rows if r.outcome == name]
        out[name] = {"questions_%": round(100 * len(inside) / len(rows), 2),
                     "f1_points_lost": round(100 * sum(1 - r.f1 for r in inside) / len(rows), 2)}
    return out


def auroc(scores: np.ndarray, right: np.ndarray) -> float | None:
    """Probability that a right answer outranks a wrong one (ties count half)."""
    positives, negatives = int(right.sum()), int((~right).sum())
    if not positives or not negatives:
        return None
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores):  # average ranks over ties
        tied = scores == value
        ranks[tied] = ranks[tied].mean()
    return float((ranks[right].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def coverage_curve(rows: list[Row], coverages=tuple(range(5, 101, 5))) -> list[tuple[int, float]]:
    """(coverage %, F1 of the best guesses) when only the most confident share of questions is answered."""
    f1s = np.array([r.candidate_f1 for r in sorted(rows, key=lambda r: -r.score)])
    return [(c, round(100 * float(f1s[: max(1, round(len(f1s) * c / 100))].mean()), 2)) for c in coverages]


def selective(rows: list[Row]) -> dict:
    """Confidence as a ranking signal: AUROC for right (best guess F1 >= 0.5) vs wrong, and F1 at coverages."""
    if not rows:
        return {}
    scores = np.array([r.score for r in rows])
    right = np.array([r.candidate_f1 >= 0.5 for r in rows])
    value = auroc(scores, right)
    return {"confidence_auroc": round(value, 4) if value is not None else None,
            **{f"f1_at_{c}%_coverage": f1 for c, f1 in coverage_curve(rows, (50, 80, 100))}}


# -- a reader on its own: the gold paragraph given (bench/reader.py, bench/select_reader.py) --------------------
def read_gold_paragraphs(reader, squad: SquadSet, questions: list[SquadQuestion], batch: int = 64,
                         label: str = "read") -> list:
    """The reader's Reading of each SQuAD question over its own (gold) paragraph alone, in batches."""
    readings = []
    for offset in tqdm(range(0, len(questions), batch), desc=label, unit="batch"):
        part = questions[offset : offset + batch]
        readings.extend(reader.run_many([(q.question, [squad.contexts[q.context_index]]) for q in part]))
    return readings


def squad_scores(questions: list[SquadQuestion], predictions: list[str]) -> dict:
    """EM and F1 in percent (an unanswerable question is right when the prediction is ""); with unanswerable
    questions also answerable F1, unanswerable accuracy and no-answer accuracy."""
    em = [exact_match(p, [] if q.is_impossible else q.answers) for q, p in zip(questions, predictions)]
    f1 = [f1_score(p, [] if q.is_impossible else q.answers) for q, p in zip(questions, predictions)]
    out = {"questions": len(questions), "exact_match": round(100 * np.mean(em), 2), "f1": round(100 * np.mean(f1), 2)}
    has = [i for i, q in enumerate(questions) if not q.is_impossible]
    no = [i for i, q in enumerate(questions) if q.is_impossible]
    if no:
        out["answerable_f1"] = round(100 * np.mean([f1[i] for i in has]), 2)
        out["unanswerable_accuracy"] = round(100 * np.mean([predictions[i] == "" for i in no]), 2)
        out["no_answer_accuracy"] = round(100 * np.mean([(predictions[i] == "") == questions[i].is_impossible
                                                          for i in range(len(questions))]), 2)
    return out


def window_latencies(readers: dict, runs: int = 60, length: int = 256) -> dict[str, float]:
    """Median milliseconds for one full 256-token window, batch of 1, per reader. The readers take turns, so
    that this VM's drift between minutes falls on all of them alike."""
    import torch

    ids = torch.randint(1000, 20000, (1, length))
    tensors = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
    arrays = {name: tensor.numpy() for name, tensor in tensors.items()}
    times: dict[str, list[float]] = {name: [] for name in readers}
    with torch.inference_mode():
        for i in range(runs + 5):
            for name, reader in readers.items():
                inputs = arrays if reader.runtime == "onnx" else tensors
                started = time.perf_counter()
                reader.model(**inputs)
                if i >= 5:
                    times[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}
