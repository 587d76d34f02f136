"""Small synthetic indexes whose vectors encode their document number, so misalignment is detectable."""

import numpy as np

from qa.chunk import Chunk
from qa.index import Fingerprint, Index
from qa.load import make_document


def make_index(n_documents: int, dimension: int = 8, chunks_per_document: int = 2) -> Index:
    documents, chunks, rows = [], [], []
    for d in range(n_documents):
        document = make_document(f"doc{d:04d}.txt", f"Document {d} says hello. It has two sentences.")
        documents.append(document)
        for c in range(chunks_per_document):
            chunks.append(Chunk(f"{document.id}#{c}", document.id, 0, 10, document.text[:10]))
            vector = np.zeros(dimension, dtype=np.float32)
            vector[0] = d  # lets a test check that vectors stay aligned with their chunks
            vector[1] = 1.0
            rows.append(vector / np.linalg.norm(vector))
    fingerprint = Fingerprint("test-embedder", dimension, {"max_tokens": 10})
    return Index(fingerprint, {d.id: d for d in documents}, chunks, np.array(rows).reshape(-1, dimension))


def assert_consistent(index: Index) -> None:
    assert len(index.chunks) == len(index.vectors) == index.faiss.ntotal
    for chunk, vector in zip(index.chunks, index.vectors):
        assert chunk.document in index.documents
        number = int(chunk.document[3:7])
        assert np.isclose(vector[0] / vector[1], number, atol=1e-3)
