"""Aggregate: choose one answer among the reader's spans over every passage read, and say how likely it is right.

The reader ranks spans by their margin over their own window's no-answer score; across passages and questions
that margin alone is a weak judge of which answer to believe. Here spans are grouped by their normalised text
(the same answer found in several passages is one candidate), each candidate is described by reader, retrieval
and agreement evidence, and a logistic model turns that into the probability that the candidate is right
(fitted by qa/calibrate.py on questions derived from SQuAD train; stored as `answer_scorer.json` beside the
reader it was fitted for). Without a scorer file, the reader's own calibrated margin decides, as before.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from qa.read import Reading, Span
from qa.retrieve import Retrieved

SCORER_FILE = "answer_scorer.json"

FEATURES = (
    "margin",  # the best span's score minus its window's no-answer score
    "score",  # the best span's start + end logit
    "null",  # that window's no-answer score
    "lowest_null",  # the question's lowest no-answer score over every window read
    "share",  # softmax share of this candidate's spans among every span of the question
    "gap",  # margin over the best margin of any other candidate (negative when another is ahead)
    "passages",  # distinct passages proposing this answer
    "inverse_rank",  # 1 / retrieval rank of the best span's passage
    "dense",  # cosine of question and that passage
    "dense_best",  # the best cosine among the passages read
    "lexical",  # log(1 + BM25 score) of that passage
    "words",  # log(1 + words in the answer)
    "question_overlap",  # share of the answer's words that the question already says
    "numeric_match",  # the question asks for a number or date and the answer holds a digit
    "numeric_mismatch",  # it asks for one and the answer holds none
    "read",  # passages read (two when the first two settled the question)
)

NUMERIC_QUESTION = re.compile(r"\b(when|what year|which year|how (many|much|long|old|far|large|big|tall|often)|"
                               r"what (percentage|percent|number|date|time|age))\b", re.IGNORECASE)
_WORD = re.compile(r"\w+", re.UNICODE)


def normalize_answer(text: str) -> str:
    from qa.evaluate import normalize_answer as squad_normalize

    return squad_normalize(text)


@dataclass(frozen=True)
class Candidate:
    """One answer text and the spans that propose it, best span first."""

    text: str
    span: Span
    spans: tuple[Span, ...]
    features: dict[str, float]
    probability: float = 0.0  # its expected F1: the scorer's, else the reader's calibrated margin


_IDENTIFIER_WORD = re.compile(r"^-{1,2}[^\W\d_]|[=_/\\]|\w\.\d")
_TRAILING = ".,;:!?)]}\"'\u201d\u2019"


def complete_identifier(span: Span, passage: str) -> Span:
    """A span that cuts an option, path or identifier in half ("yes" of "--trace-children=yes") grows to the
    whole whitespace-delimited word, less the sentence's closing punctuation; other spans stay as they are."""
    start, end = span.start, span.end
    while start > 0 and not passage[start - 1].isspace():
        start -= 1
    while end < len(passage) and not passage[end].isspace():
        end += 1
    while end > span.end and passage[end - 1] in _TRAILING:
        end -= 1
    if (start, end) == (span.start, span.end):
        return span
    glued = [passage[start:span.start], passage[span.end:end]]
    if not any(_IDENTIFIER_WORD.search(word) for word in passage[start:end].split()) or \
            not any(piece and not piece.isalnum() for piece in glued):
        return span  # a hyphenated word or a possessive: the reader's cut stands
    return replace(span, start=start, end=end, text=passage[start:end])


def candidates(question: str, reading: Reading, hits: list[Retrieved]) -> list[Candidate]:
    """Spans grouped by normalised text, each group described by FEATURES; in the reader's order."""
    spans = [complete_identifier(s, hits[s.passage].chunk.text) if s.passage < len(hits) else s
             for s in reading.spans]
    keyed = [(normalize_answer(s.text), s) for s in spans]
    keyed = [(key, s) for key, s in keyed if key]  # punctuation or markup alone is no answer
    if not keyed:
        return []
    spans = [s for _, s in keyed]
    groups: dict[str, list[Span]] = {}
    for key, span in keyed:  # reading.spans is sorted by margin, so each group's first span is its best
        groups.setdefault(key, []).append(span)
    margins = np.array([s.margin for s in spans])
    top = margins.max()
    total = float(np.exp(margins - top).sum())
    best_margins = sorted((g[0].margin for g in groups.values()), reverse=True)
    question_words = {w.lower() for w in _WORD.findall(question)}
    numeric_question = bool(NUMERIC_QUESTION.search(question))
    dense_best = max((h.dense_score for h in hits), default=0.0)
    result = []
    for key, group in groups.items():
        best = group[0]
        hit = hits[best.passage] if best.passage < len(hits) else None
        runner_up = best_margins[1] if best.margin == best_margins[0] and len(best_margins) > 1 else best_margins[0]
        words = key.split()
        has_digit = any(ch.isdigit() for ch in key)
        features = {
            "margin": best.margin,
            "score": best.score,
            "null": best.null_score,
            "lowest_null": reading.null_score,
            "share": float(sum(math.exp(s.margin - top) for s in group) / total),
            "gap": best.margin - runner_up if len(best_margins) > 1 else 10.0,
            "passages": float(len({s.passage for s in group})),
            "inverse_rank": 1.0 / (best.passage + 1),
            "dense": hit.dense_score if hit else 0.0,
            "dense_best": dense_best,
            "lexical": math.log1p(hit.lexical_score) if hit else 0.0,
            "words": math.log1p(len(words)),
            "question_overlap": sum(w in question_words for w in words) / len(words),
            "numeric_match": float(numeric_question and has_digit),
            "numeric_mismatch": float(numeric_question and not has_digit),
            "read": float(reading.passages),
        }
        result.append(Candidate(best.text, best, tuple(group), features, best.confidence))
    return result


@dataclass(frozen=True)
class AnswerScorer:
    """P(right) = sigmoid(weights . standardised features + intercept), features as named in `features`."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    intercept: float
    about: dict = field(default_factory=dict)  # what it was fitted on: reader, runtime, data, held-out figures

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """Probabilities for rows of features in FEATURES order (the scorer uses the columns it was fitted on)."""
        x = np.asarray(rows, dtype=np.float64).reshape(-1, len(FEATURES))[:, [FEATURES.index(n) for n in self.features]]
        z = ((x - np.array(self.mean)) / np.array(self.scale)) @ np.array(self.weights) + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))

    def probabilities(self, found: list[Candidate]) -> np.ndarray:
        return self.predict([[c.features[name] for name in FEATURES] for c in found])

    def rank(self, found: list[Candidate]) -> list[Candidate]:
        """Candidates with their probability set, most probable first."""
        scored = [Candidate(c.text, c.span, c.spans, c.features, float(p))
                  for c, p in zip(found, self.probabilities(found))]
        return sorted(scored, key=lambda c: -c.probability)

    def save(self, path: str | Path) -> None:
        payload = {"features": list(self.features), "mean": list(self.mean), "scale": list(self.scale),
                   "weights": list(self.weights), "intercept": self.intercept, "about": self.about}
        Path(path).write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "AnswerScorer":
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        missing = set(data["features"]) - set(FEATURES)
        if missing:
            raise ValueError(f"{path}: unknown features {sorted(missing)}")
        return cls(tuple(data["features"]), tuple(data["mean"]), tuple(data["scale"]), tuple(data["weights"]),
                   float(data["intercept"]), data.get("about", {}))

    @classmethod
    def for_reader(cls, reader_folder: str) -> "AnswerScorer | None":
        """The scorer fitted for this reader, if its folder carries one (a hub id or a bare folder has none)."""
        path = Path(reader_folder) / SCORER_FILE
        return cls.load(path) if path.is_file() else None


def rank_candidates(question: str, reading: Reading, hits: list[Retrieved],
                    scorer: AnswerScorer | None) -> list[Candidate]:
    """Every candidate answer, most probable first."""
    found = candidates(question, reading, hits)
    if scorer is None:
        return sorted(found, key=lambda c: -c.span.margin)
    return scorer.rank(found)
