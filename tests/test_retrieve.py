import pytest

from qa.chunk import Chunker
from qa.embed import Embedder
from qa.index import Fingerprint, IndexStore
from qa.load import make_document
from qa.retrieve import Retriever, reciprocal_rank_fusion


def test_fusion_sums_reciprocal_ranks():
    fused = dict(reciprocal_rank_fusion([[7, 8, 9], [9, 7]], k=10))
    assert fused[7] == pytest.approx(1 / 11 + 1 / 12)
    assert fused[9] == pytest.approx(1 / 13 + 1 / 11)
    assert fused[8] == pytest.approx(1 / 12)  # missing from one ranking: that ranking adds nothing


def test_fusion_breaks_ties_by_the_first_ranking():
    # 2nd-and-3rd ties with 3rd-and-2nd; the first ranking's order decides.
    assert [item for item, _ in reciprocal_rank_fusion([[1, 2, 3], [1, 3, 2]])] == [1, 2, 3]
    assert [item for item, _ in reciprocal_rank_fusion([[1, 3, 2], [1, 2, 3]])] == [1, 3, 2]


def test_retrieved_chunks_follow_the_fused_order_and_tie_by_lexical_rank(tmp_path):
    # Two real documents that the real embedder and BM25 rank in opposite orders for the question: each is 1st
    # in one ranking and 2nd in the other, so their fused scores tie exactly and the lexical order must decide.
    texts = {"lexical.txt": "Nest nest nest: the word nest appears in this filing index of herons, nest records and "
                            "nest numbers.",
             "dense.txt": "Grey herons build their nests of sticks high in tall trees, in colonies near lakes and "
                          "rivers."}
    embedder = Embedder()
    chunker = Chunker(embedder.tokenizer, 160, 32)
    documents = [make_document(name, text) for name, text in texts.items()]
    chunks = [chunk for document in documents for chunk in chunker.split(document)]
    index = IndexStore(tmp_path / "index").commit(Fingerprint(embedder.name(), embedder.dimension, chunker.settings()),
                                                  documents, chunks, embedder.embed([c.text for c in chunks]))
    retriever = Retriever(embedder)
    hits = retriever.run(index, ["Where do herons nest?"], top_k=2)[0]
    assert [(h.chunk.document, h.dense_rank, h.lexical_rank) for h in hits] == [("lexical.txt", 2, 1),
                                                                                   ("dense.txt", 1, 2)]
    k = retriever.config.rrf_k
    assert hits[0].score == hits[1].score == pytest.approx(1 / (k + 1) + 1 / (k + 2))


def test_each_hit_carries_its_true_cosine_and_bm25_score(tmp_path):
    embedder = Embedder()
    chunker = Chunker(embedder.tokenizer, 160, 32)
    texts = ["Grey herons nest in tall trees near lakes.", "The session was held by video conference.",
             "Herons eat roach and perch."]
    documents = [make_document(f"d{i}.txt", t) for i, t in enumerate(texts)]
    chunks = [c for d in documents for c in chunker.split(d)]
    vectors = embedder.embed([c.text for c in chunks])
    store = IndexStore(tmp_path / "index")
    store.commit(Fingerprint(embedder.name(), embedder.dimension, chunker.settings()), documents[:2], chunks[:2],
                 vectors[:2])
    index = store.commit(Fingerprint(embedder.name(), embedder.dimension, chunker.settings()), documents[2:],
                         chunks[2:], vectors[2:])  # a second segment
    question = "What do herons eat?"
    hits = Retriever(embedder).run(index, [question], top_k=3)[0]
    expected = {c.text: float(v @ embedder.embed_questions([question])[0]) for c, v in zip(chunks, vectors)}
    for hit in hits:
        assert hit.dense_score == pytest.approx(expected[hit.chunk.text], abs=1e-5)
        assert (hit.lexical_score > 0) == (hit.lexical_rank is not None)
