"""Top-k chunks for a question: dense (FAISS) and lexical (BM25) rankings fused by reciprocal rank."""

from __future__ import annotations

from dataclasses import dataclass

from qa.chunk import Chunk
from qa.embed import Embedder
from qa.index import Index


@dataclass(frozen=True)
class Retrieved:
    chunk: Chunk
    score: float  # fused score: higher is better; comparable only within one question
    dense_rank: int | None
    lexical_rank: int | None
    dense_score: float = 0.0  # cosine similarity of question and chunk
    lexical_score: float = 0.0  # BM25 score (0 when outside the lexical candidates)


def reciprocal_rank_fusion(rankings: list[list[int]], k: int = 60) -> list[tuple[int, float]]:
    """Sum of 1 / (k + rank) over rankings (rank from 1); ties keep the first ranking's order."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda pair: -pair[1])


class Retriever:
    def __init__(self, embedder: Embedder, top_k: int = 4, candidates: int = 20, rrf_k: int = 60,
                 use_bm25: bool = True):
        self.embedder = embedder
        self.top_k = top_k
        self.candidates = candidates
        self.rrf_k = rrf_k
        self.use_bm25 = use_bm25

    def run(self, index: Index, questions: list[str], top_k: int | None = None) -> list[list[Retrieved]]:
        top_k = top_k or self.top_k
        if not questions:
            return []
        question_vectors = self.embedder.embed_questions(questions)
        dense = index.search_dense(question_vectors, self.candidates)
        lexical = index.search_bm25(questions, self.candidates) if self.use_bm25 else [[] for _ in questions]
        results = []
        for question_vector, dense_hits, lexical_hits in zip(question_vectors, dense, lexical):
            dense_ids = [i for i, _ in dense_hits]
            lexical_ids = [i for i, _ in lexical_hits]
            lexical_score = dict(lexical_hits)
            # Lexical first: its order breaks ties (a chunk ranked 2nd and 3rd ties with one ranked 3rd and 2nd).
            # SQuAD dev, 10,570 questions: the gold chunk first 76.11% of the time, 74.62% with dense order first
            # (bench/ranking.py).
            fused = reciprocal_rank_fusion([lexical_ids, dense_ids], self.rrf_k)[:top_k]
            dense_rank = {c: r for r, c in enumerate(dense_ids, 1)}
            lexical_rank = {c: r for r, c in enumerate(lexical_ids, 1)}
            results.append([Retrieved(index.chunks[i], s, dense_rank.get(i), lexical_rank.get(i),
                                      float(index.vectors[i] @ question_vector), lexical_score.get(i, 0.0))
                            for i, s in fused])
        return results
