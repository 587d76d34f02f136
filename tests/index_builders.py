"""Small synthetic indexes whose vectors encode their document number, so misalignment is detectable."""

import numpy as np

from qa.chunk import Chunk
from qa.index import Fingerprint, Index, IndexStore
from qa.load import Document, make_document

FINGERPRINT = Fingerprint("test-embedder", 8, {"max_tokens": 10})


def make_parts(numbers, dimension: int = 8, chunks_per_document: int = 2):
    """Documents doc<number>.txt, their chunks, and vectors whose first two components give the number."""
    documents, chunks, rows = [], [], []
    for d in numbers:
        document = make_document(f"doc{d:04d}.txt", f"Document {d} says hello. It has two sentences.")
        documents.append(document)
        for c in range(chunks_per_document):
            chunks.append(Chunk(f"{document.id}#{c}", document.id, 0, 10, document.text[:10]))
            vector = np.zeros(dimension, dtype=np.float32)
            vector[0] = d  # lets a test check that vectors stay aligned with their chunks
            vector[1] = 1.0
            rows.append(vector / np.linalg.norm(vector))
    return documents, chunks, np.array(rows, dtype=np.float32).reshape(-1, dimension)


def fingerprint(dimension: int = 8) -> Fingerprint:
    return Fingerprint("test-embedder", dimension, {"max_tokens": 10})


def add(store: IndexStore, numbers, dimension: int = 8, chunks_per_document: int = 2) -> Index:
    documents, chunks, vectors = make_parts(numbers, dimension, chunks_per_document)
    return store.commit(fingerprint(dimension), documents, chunks, vectors)


def assert_consistent(index: Index) -> None:
    """Every live vector row belongs to a live chunk of a live document, with that document's number."""
    live = 0
    documents = set(index.documents)
    for segment in index.segments:
        for number, vector in zip(segment.ids, segment.vectors):
            if number in index.dead:
                continue
            live += 1
            chunk = index.chunks[number]
            assert chunk.document in documents
            assert np.isclose(vector[0] / vector[1], int(chunk.document[3:7]), atol=1e-3)
    assert live == len(index.chunks) == len(list(index.chunks))


def document_ids(index: Index) -> list[str]:
    return sorted(index.documents)


__all__ = ["Document", "FINGERPRINT", "add", "assert_consistent", "document_ids", "fingerprint", "make_parts"]
