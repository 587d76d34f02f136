import pytest

from qa.retrieve import reciprocal_rank_fusion


def test_fusion_sums_reciprocal_ranks():
    fused = dict(reciprocal_rank_fusion([[7, 8, 9], [9, 7]], k=10))
    assert fused[7] == pytest.approx(1 / 11 + 1 / 12)
    assert fused[9] == pytest.approx(1 / 13 + 1 / 11)
    assert fused[8] == pytest.approx(1 / 12)  # missing from one ranking: that ranking adds nothing


def test_fusion_breaks_ties_by_the_first_ranking():
    # 2nd-and-3rd ties with 3rd-and-2nd; the first ranking's order decides.
    assert [item for item, _ in reciprocal_rank_fusion([[1, 2, 3], [1, 3, 2]])] == [1, 2, 3]
    assert [item for item, _ in reciprocal_rank_fusion([[1, 3, 2], [1, 2, 3]])] == [1, 3, 2]


def test_retrieved_chunks_follow_the_fused_order_and_tie_by_lexical_rank(shipped_bot):
    hits = shipped_bot.retriever.run(shipped_bot.index, ["What does CSTO stand for?"], top_k=6)[0]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    k = shipped_bot.config.rrf_k
    for hit in hits:
        expected = sum(1 / (k + rank) for rank in (hit.dense_rank, hit.lexical_rank) if rank is not None)
        assert hit.score == pytest.approx(expected)
    for earlier, later in zip(hits, hits[1:]):
        if earlier.score == pytest.approx(later.score, abs=1e-12):
            assert (earlier.lexical_rank or 10**6) < (later.lexical_rank or 10**6)
