"""The public API: `QA` answers questions over documents with an exact quote, or says it cannot."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from qa.aggregate import AnswerScorer, Candidate, rank_candidates
from qa.chunk import Chunk, Chunker
from qa.config import Config
from qa.embed import Embedder
from qa.index import LEXICAL_VERSION, Fingerprint, Index, IndexStore
from qa.library import Library
from qa.load import Document, DocumentError, document_from_bytes, load_corpus, load_file, safe_document_id
from qa.read import Reader, Reading
from qa.retrieve import Retrieved, Retriever

log = logging.getLogger("qa")

class QuestionError(ValueError):
    """A question that cannot be asked (empty, too long); the message says why."""


@dataclass(frozen=True)
class Alternative:
    """Another answer the documents might give, for an unsure or declined question."""

    text: str
    score: float
    document: str
    start: int  # document.text[start:end] is the quote (text is that quote with its whitespace squeezed)
    end: int


@dataclass
class Answer:
    question: str
    text: str  # the exact quote (whitespace squeezed); "" when the documents do not hold the answer
    score: float  # how right the answer is expected to be: the answer scorer's expected F1 (qa/aggregate.py)
    found: bool
    document: str = ""  # document id
    start: int = 0  # document.text[start:end] is the quote
    end: int = 0
    context: str = ""  # the passage (chunk) the answer came from
    context_start: int = 0  # where that passage starts in the document
    passages: list[Chunk] = field(default_factory=list)  # the retrieved passages, best first
    message: str = ""  # why nothing was found, when there is a reason beyond low confidence
    confident: bool = False  # found, and score reaches Config.confident_threshold; found but not confident: unsure
    alternatives: list[Alternative] = field(default_factory=list)  # next-best answers (the best guesses if declined)
    page: int | None = None  # PDFs: the 1-based page the quote stands on

    def where(self) -> str:
        """'report.pdf p. 12 [3001:3020]': the document, page (PDFs) and characters of the quote."""
        return f"{self.document}{f' p. {self.page}' if self.page else ''} [{self.start}:{self.end}]"

    def to_dict(self) -> dict:
        return {
            "question": self.question, "text": self.text, "score": round(self.score, 4), "found": self.found,
            "confident": self.confident, "document": self.document, "start": self.start, "end": self.end,
            "context": self.context, "context_start": self.context_start, "message": self.message, "page": self.page,
            "alternatives": [{"text": a.text, "score": round(a.score, 4), "document": a.document, "start": a.start,
                              "end": a.end} for a in self.alternatives],
            "passages": [{"document": p.document, "start": p.start, "end": p.end, "text": p.text}
                         for p in self.passages],
        }


_ENGLISH_WORDS = frozenset(
    "the of and to in is was what who whom whose when where which why how did does do are were for on with by "
    "from that this these those many much it its has have had been be can could will would should their there "
    "after before during about into than an".split()
)
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def looks_english(question: str) -> bool:
    """A cheap guard for an English-only reader: Latin letters, and an English function word when long."""
    words = _WORD.findall(question.lower())
    if not words:
        return True  # digits and symbols only: let retrieval try
    letters = "".join(words)
    latin = sum(1 for ch in letters if ch.isascii() or "\u00c0" <= ch <= "\u024f")
    if latin / len(letters) < 0.6:
        return False
    return len(words) <= 3 or any(w in _ENGLISH_WORDS for w in words)


class QA:
    """Extractive question answering over a folder of documents, offline.

    >>> bot = QA()                                      # seeds/ indexed in index/
    >>> bot = QA.from_paths(["docs/"], index_dir="my_index")
    >>> bot.ask("Who chaired the session?").text
    """

    def __init__(self, config: Config | None = None, **overrides):
        import torch

        self.config = replace(config, **overrides) if config is not None else Config.from_env(**overrides)
        cfg = self.config
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        # The components share this Config: live settings changed on it take effect, others are refused.
        self.embedder = Embedder.from_config(cfg)
        self.chunker = Chunker(self.embedder.tokenizer, cfg.chunk_tokens, cfg.chunk_overlap_tokens)
        self.retriever = Retriever(self.embedder, cfg)
        self.reader = Reader.from_config(cfg)
        self.scorer = AnswerScorer.for_reader(cfg.reader) if cfg.use_scorer else None
        self.fingerprint = Fingerprint(self.embedder.name(), self.embedder.dimension, self.chunker.settings(),
                                       lexical=LEXICAL_VERSION)
        # Chunks are tokenised for the reader when first retrieved (an LRU cache), not all at start.
        self.library = Library(cfg, self.embedder, self.chunker, self.fingerprint)

    @classmethod
    def from_paths(cls, paths: list[str | Path], index_dir: str | Path | None = None, **overrides) -> "QA":
        overrides["corpus"] = [str(p) for p in paths]
        if index_dir is not None:
            overrides["index_dir"] = str(index_dir)
        return cls(**overrides)

    # -- documents (kept by the Library) --------------------------------------------------------------------
    @property
    def index(self) -> Index:
        """The latest committed snapshot; a question keeps the one it started with."""
        return self.library.index

    @property
    def store(self) -> IndexStore:
        return self.library.store

    @property
    def problems(self) -> list[str]:
        return self.library.problems

    def documents(self) -> list[Document]:
        return self.library.documents()

    def add(self, path: str | Path) -> list[str]:
        """Index a file or every supported file in a folder; returns the ids added or updated.

        Raises DocumentError when nothing could be added and something was wrong (the message says what).
        """
        path = Path(path)
        if path.is_dir():
            documents, problems = load_corpus([path], self.config.max_file_bytes)
        else:
            documents, problems = [load_file(path, max_bytes=self.config.max_file_bytes)], []
        documents = [replace(d, source=str(path)) for d in documents]
        changed = self._add_documents(documents, problems)
        if problems and not changed:
            raise DocumentError("; ".join(problems))
        return changed

    def add_bytes(self, name: str, data: bytes) -> str:
        """Index an uploaded file (name from the user, so it is sanitised); returns its document id."""
        document = document_from_bytes(safe_document_id(name), data, self.config.max_file_bytes, source="upload")
        problems: list[str] = []
        changed = self._add_documents([document], problems)
        if not changed:
            raise DocumentError(problems[0])
        return changed[0]

    def add_documents(self, documents: list[Document], problems: list[str] | None = None) -> list[str]:
        """Index documents made in memory (see qa.load.make_document); returns the ids added."""
        return self._add_documents(documents, problems if problems is not None else [])

    def _add_documents(self, documents: list[Document], problems: list[str]) -> list[str]:
        added, chunks = self.library.add(documents, problems)
        self.reader.warm([c.text for c in chunks])
        return added

    def remove(self, document_id: str) -> None:
        self.library.remove(document_id)

    def removed(self) -> list[str]:
        """Corpus documents the user removed: restore() indexes them again."""
        return sorted(self.index.excluded)

    def restore(self, document_id: str) -> str:
        """Index again a corpus document that remove() took out; returns its id."""
        chunks = self.library.restore(document_id)
        self.reader.warm([c.text for c in chunks])
        return document_id

    # -- questions ------------------------------------------------------------------------------------------
    def _check(self, question: str) -> str:
        if not isinstance(question, str):
            raise QuestionError("The question must be text.")
        question = " ".join(question.split())
        if not question:
            raise QuestionError("Please type a question.")
        if len(question) > self.config.max_question_chars:
            raise QuestionError(f"The question is {len(question):,} characters long; please keep it under "
                                f"{self.config.max_question_chars:,}.")
        return question

    def ask(self, question: str, history: list[tuple[str, str]] | None = None) -> Answer:
        """history: the earlier turns [(question, answer text)], oldest first; a follow-up question ("Which
        country is he from?") is then read against them (qa.converse)."""
        if history is not None:
            from qa.converse import ask_with_history

            return ask_with_history(self, question, history)
        return self.ask_many([question])[0]

    def conversation(self):
        """A qa.converse.Conversation: ask() in turn, each follow-up read against the turns before it."""
        from qa.converse import Conversation

        return Conversation(self)

    def ask_many(self, questions: list[str], top_k: int | None = None,
                 not_answer: Callable[[str, str], bool] | None = None,
                 search: list[str] | None = None) -> list[Answer]:
        """Answers in order; all questions share one retrieval call and one batched pass of the reader.
        not_answer(question, span text): spans it rejects are dropped before the answers are ranked (a follow-up
        does not ask for what the conversation already said: qa.converse). search: a query per question to retrieve
        passages with instead of the question itself (the reader still reads the question)."""
        cleaned = [self._check(q) for q in questions]
        index = self.index  # one snapshot for the whole call, even if a document is added meanwhile
        answers: list[Answer | None] = [None] * len(cleaned)
        todo = []
        for i, question in enumerate(cleaned):
            if not index.chunks:
                answers[i] = Answer(question, "", 0.0, False, message="No documents are indexed yet.")
            elif not looks_english(question):
                answers[i] = Answer(question, "", 0.0, False, message="The reader understands English only; "
                                    "please ask the question in English.")
            else:
                todo.append(i)
        queries = [" ".join(q.split()) for q in search] if search is not None else cleaned
        retrieved = self.retriever.run(index, [queries[i] for i in todo], top_k)
        readings = self._read([cleaned[i] for i in todo], retrieved)
        for i, hits, reading in zip(todo, retrieved, readings):
            if not_answer is not None:
                reading = replace(reading, spans=[s for s in reading.spans if not not_answer(cleaned[i], s.text)])
            answers[i] = self._answer(cleaned[i], hits, reading)
            if answers[i].found and answers[i].document in index.documents:
                answers[i].page = index.documents[answers[i].document].page_of(answers[i].start)
        return answers

    def _read(self, questions: list[str], retrieved: list[list[Retrieved]]) -> list[Reading]:
        """Top chunks first; the rest only for questions the top chunks leave unsettled (see Config.read_first)."""
        first = self.config.read_first
        if first <= 0:
            return self.reader.run_many([(q, [h.chunk.text for h in hits]) for q, hits in zip(questions, retrieved)])
        readings = self.reader.run_many([(q, [h.chunk.text for h in hits[:first]])
                                         for q, hits in zip(questions, retrieved)])
        unsettled = [i for i, (reading, hits) in enumerate(zip(readings, retrieved)) if len(hits) > first and
                     (reading.best is None or reading.best.confidence < self.config.settle_confidence)]
        later = self.reader.run_many([(questions[i], [h.chunk.text for h in retrieved[i][first:]]) for i in unsettled])
        for i, reading in zip(unsettled, later):
            readings[i] = readings[i].merged(reading, first, self.config.n_best)
        return readings

    def _answer(self, question: str, hits: list[Retrieved], reading: Reading) -> Answer:
        passages = [h.chunk for h in hits]
        ranked = rank_candidates(question, reading, hits, self.scorer)
        if not ranked:
            return Answer(question, "", 0.0, False, passages=passages)

        def located(candidate: Candidate) -> Alternative:
            chunk = passages[candidate.span.passage]
            return Alternative(" ".join(candidate.text.split()), candidate.probability, chunk.document,
                               chunk.start + candidate.span.start, chunk.start + candidate.span.end)

        best = ranked[0]
        if best.probability < self.config.threshold:  # declined: the best guesses are the alternatives
            return Answer(question, "", best.probability, False, passages=passages,
                          alternatives=[located(c) for c in ranked[: self.config.alternatives]])
        others = [located(c) for c in ranked[1 : 1 + self.config.alternatives]]
        chunk = passages[best.span.passage]
        shown = located(best)
        return Answer(question, shown.text, best.probability, True, chunk.document, shown.start, shown.end, chunk.text,
                      chunk.start, passages, confident=best.probability >= self.config.confident_threshold,
                      alternatives=others)
