"""Top-k chunks for a question: dense (FAISS) and lexical (BM25) rankings fused by reciprocal rank."""

from __future__ import annotations

from dataclasses import dataclass

from qa.chunk import Chunk
from qa.config import Config
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
    """Reads top_k, candidates, rrf_k and use_bm25 from its Config at each call (see qa.config.LIVE_SETTINGS)."""

    def __init__(self, embedder: Embedder, config: Config | None = None, **settings):
        self.embedder = embedder
        self.config = Config.with_settings(config, settings)

    def run(self, index: Index, questions: list[str], top_k: int | None = None) -> list[list[Retrieved]]:
        cfg = self.config
        top_k = top_k or cfg.top_k
        if not questions:
            return []
        question_vectors = self.embedder.embed_questions(questions)
        dense, lexical = index.search(question_vectors, questions if cfg.use_bm25 else None, cfg.candidates)
        results = []
        for question_vector, dense_hits, lexical_hits in zip(question_vectors, dense, lexical):
            dense_ids = [i for i, _ in dense_hits]
            lexical_ids = [i for i, _ in lexical_hits]
            lexical_score = dict(lexical_hits)
            # Lexical first: its order breaks ties (a chunk ranked 2nd and 3rd ties with one ranked 3rd and 2nd).
            # On SQuAD dev the gold chunk comes first more often than with the dense order first
            # (bench/ranking.py, bench/results/ranking.json).
            fused = reciprocal_rank_fusion([lexical_ids, dense_ids], cfg.rrf_k)[:top_k]
            dense_rank = {c: r for r, c in enumerate(dense_ids, 1)}
            lexical_rank = {c: r for r, c in enumerate(lexical_ids, 1)}
            cosines = index.vectors_of([i for i, _ in fused]) @ question_vector
            results.append([Retrieved(index.chunks[i], s, dense_rank.get(i), lexical_rank.get(i), float(cosine),
                                      lexical_score.get(i, 0.0)) for (i, s), cosine in zip(fused, cosines)])
        return results
