"""Reading SQuAD-format files (v1.1, v2.0, XQuAD, COVID-QA): plain or gzipped JSON."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path

from qa.config import PROJECT_ROOT

# Where this project's SQuAD files live (benchmarks and training read them; they are never committed).
SQUAD_DIR = PROJECT_ROOT.parent / "shared" / "data" / "squad"


@dataclass
class SquadQuestion:
    id: str
    question: str
    answers: list[str]
    answer_starts: list[int]
    context_index: int  # index into SquadSet.contexts
    is_impossible: bool = False


@dataclass
class SquadSet:
    contexts: list[str] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)  # one per context
    questions: list[SquadQuestion] = field(default_factory=list)


def read_squad(path: str | Path) -> SquadSet:
    """Flatten a SQuAD file into contexts and questions.

    Answer texts are kept as given; leading/trailing whitespace (seen in COVID-QA) is stripped and the
    start moved accordingly, so `context[start:start+len(text)] == text` holds whenever the source allows.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        raw = json.load(handle)
    squad = SquadSet()
    for article in raw["data"]:
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            squad.contexts.append(context)
            squad.titles.append(article.get("title", ""))
            context_index = len(squad.contexts) - 1
            for qa in paragraph["qas"]:
                texts, starts = [], []
                for answer in qa.get("answers", []):
                    text = answer["text"]
                    start = int(answer.get("answer_start", -1))
                    stripped = text.strip()
                    if stripped != text and start >= 0:
                        start += len(text) - len(text.lstrip())
                    if context[start : start + len(stripped)] != stripped:
                        start = context.find(stripped)
                    texts.append(stripped)
                    starts.append(start)
                squad.questions.append(
                    SquadQuestion(
                        id=str(qa["id"]),
                        question=qa["question"],
                        answers=texts,
                        answer_starts=starts,
                        context_index=context_index,
                        is_impossible=bool(qa.get("is_impossible", False)) or not texts,
                    )
                )
    return squad
