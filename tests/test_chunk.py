import pytest

from qa.chunk import Chunker
from qa.config import default_embedder
from qa.load import make_document
from tests.conftest import SEED_DIR, SEED_ID


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(default_embedder())


def test_chunks_map_back_to_exact_spans_and_respect_the_token_limit(tokenizer):
    document = make_document(SEED_ID, (SEED_DIR / SEED_ID).read_text(encoding="utf-8"))
    chunker = Chunker(tokenizer, max_tokens=64, overlap_tokens=16)
    chunks = chunker.split(document)
    assert len(chunks) > 5
    for chunk in chunks:
        assert document.text[chunk.start : chunk.end] == chunk.text
        assert len(chunker.token_spans(chunk.text)) <= 64
        assert chunk.document == SEED_ID
    # Consecutive chunks overlap, and together they cover every token of the document.
    for before, after in zip(chunks, chunks[1:]):
        assert after.start < before.end
    covered = set()
    for chunk in chunks:
        covered.update(range(chunk.start, chunk.end))
    assert all(i in covered for i, ch in enumerate(document.text) if not ch.isspace())


def test_chunks_end_on_sentence_boundaries_when_sentences_fit(tokenizer):
    sentences = [f"Sentence number {i} talks about topic {i} in a few words." for i in range(40)]
    document = make_document("s.txt", " ".join(sentences))
    chunks = Chunker(tokenizer, max_tokens=60, overlap_tokens=14).split(document)
    assert len(chunks) > 3
    for chunk in chunks[:-1]:
        assert chunk.text.endswith("words."), chunk.text[-30:]
    for chunk in chunks[1:]:
        assert chunk.text.startswith("Sentence number"), chunk.text[:30]


def test_one_enormous_line_is_split_into_bounded_chunks(tokenizer):
    text = "word " * 30_000 + "needle"  # 150 kB with no sentence boundary at all
    document = make_document("line.txt", text)
    chunker = Chunker(tokenizer, max_tokens=128, overlap_tokens=16)
    chunks = chunker.split(document)
    assert len(chunks) >= 30_000 // 128
    assert all(len(chunker.token_spans(c.text)) <= 128 for c in chunks)
    assert chunks[-1].text.endswith("needle")
    assert all(document.text[c.start : c.end] == c.text for c in chunks[::50])


def test_short_document_is_one_chunk(tokenizer):
    chunks = Chunker(tokenizer).split(make_document("x.txt", "Just one short sentence."))
    assert [(c.id, c.start, c.end) for c in chunks] == [("x.txt#0", 0, 24)]


@pytest.mark.parametrize("size,overlap", [(4, 0), (100, 50), (100, -1)])
def test_bad_settings_are_refused(tokenizer, size, overlap):
    with pytest.raises(ValueError):
        Chunker(tokenizer, size, overlap)
