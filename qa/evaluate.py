"""Batch evaluation: SQuAD-style exact match and F1, no-answer accuracy, retrieval recall, latency, report.

Question sets are JSONL ({"id", "question", "answers": [...]} per line; an empty list means the documents do not
hold the answer) or SQuAD JSON files, whose paragraphs then become the corpus.
"""

from __future__ import annotations

import collections
import json
import re
import string
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from qa.load import Document, make_document

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
        from qa.squad import read_squad

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


RECALL_DEPTH = 10


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
                    row = Row(q.id, q.question, q.answers, prediction, a.found, a.score,
                              exact_match(prediction, q.answers), f1_score(prediction, q.answers),
                              _retrieval_hit(a, q.answers), latency, question_type(q.question), a.document, rank)
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
    }


# -- output -----------------------------------------------------------------------------------------------------
def write_rows(rows: list[Row], path: str | Path) -> None:
    path = Path(path)
    if path.suffix.lower() == ".csv":
        import csv

        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(asdict(rows[0]).keys()) if rows else ["id"])
            writer.writeheader()
            for row in rows:
                record = asdict(row)
                record["gold"] = " | ".join(row.gold)
                writer.writerow(record)
    else:
        path.write_text(json.dumps([asdict(r) for r in rows], indent=1, ensure_ascii=False), encoding="utf-8")


def _plot_png(draw) -> str:
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5.2, 3.4), dpi=110)
    draw(axes)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def write_html_report(report: Report, path: str | Path, title: str = "QA evaluation") -> None:
    import html

    rows, metrics = report.rows, report.metrics

    def by_type(ax):
        types = sorted(metrics["f1_by_type"], key=lambda t: -sum(r.type == t for r in rows))
        ax.bar(types, [metrics["f1_by_type"][t] or 0 for t in types], color="#3b6ea8")
        ax.set_ylabel("F1")
        ax.set_ylim(0, 100)
        ax.set_title("F1 by question type")

    def confidence(ax):
        bins = np.linspace(0, 1, 11)
        scores = np.array([r.score for r in rows])
        correct = np.array([r.f1 for r in rows])
        centres, means = [], []
        for low, high in zip(bins[:-1], bins[1:]):
            inside = (scores >= low) & (scores < high if high < 1 else scores <= high)
            if inside.any():
                centres.append((low + high) / 2)
                means.append(correct[inside].mean())
        ax.plot([0, 1], [0, 1], "--", color="#999", label="perfect calibration")
        ax.plot(centres, means, "o-", color="#c0392b", label="observed")
        ax.set_xlabel("confidence")
        ax.set_ylabel("mean F1 (0-1)")
        ax.set_title("Confidence vs correctness")
        ax.legend(loc="upper left", fontsize=8)

    def latency(ax):
        ax.hist([r.latency_ms for r in rows], bins=30, color="#27ae60")
        ax.set_xlabel("milliseconds per question")
        ax.set_title("Latency")

    plots = "".join(f'<img alt="plot" src="data:image/png;base64,{_plot_png(f)}">' for f in (by_type, confidence, latency))
    metric_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                          for k, v in metrics.items() if k != "f1_by_type")
    worst = sorted(rows, key=lambda r: (r.f1, -r.score))[:50]
    question_rows = "".join(
        f"<tr><td>{html.escape(r.question)}</td><td>{html.escape(' | '.join(r.gold) or '(no answer)')}</td>"
        f"<td>{html.escape(r.prediction or '(not found)')}</td><td>{r.score:.2f}</td><td>{r.f1:.2f}</td></tr>"
        for r in worst)
    Path(path).write_text(f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}}img{{margin:6px}}</style></head>
<body><h1>{html.escape(title)}</h1><table>{metric_rows}</table><h2>Plots</h2>{plots}
<h2>Lowest-scoring questions</h2><table><tr><th>question</th><th>gold</th><th>prediction</th><th>confidence</th>
<th>F1</th></tr>{question_rows}</table></body></html>""", encoding="utf-8")
