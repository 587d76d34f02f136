"""The searchable index: dense vectors in append-only segments plus a SQLite catalog with full-text search.

On disk, a folder holds one SQLite database (the catalog) and the segments' vector files:

    index/catalog.sqlite               fingerprint, documents (text, size, mtime), chunks (text, offsets),
                                       an FTS5 table of the chunks' BM25 tokens, the live segments, tombstones
    index/segments/seg-000007.npy      float32 vectors of the chunks one change added (memory-mapped)
    index/segments/seg-000007.ids.npy  the chunk numbers of those rows

Cost follows the change, not the corpus: an add writes one new segment (fsynced, renamed into place) and then
commits one SQLite transaction naming it; a removal deletes the chunks' rows and full-text entries and marks
their vectors as tombstones. The transaction is the commit point: a process killed before it leaves the previous
state (and a segment file no transaction names, deleted by the next writer); a process killed after it leaves
the new one. When there are more than MAX_SEGMENTS segments, the smallest are merged into one (their live rows
only), in a background thread that holds the store lock only to commit (qa.merge). Chunk text and document text
stay on disk until a passage or a document is asked for.
"""

from __future__ import annotations

import functools
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from qa.chunk import Chunk
from qa.load import Document

FORMAT_VERSION = 3  # 3: documents keep their PDF page starts
HNSW_EF_SEARCH = 128  # candidates an HNSW search keeps (bench/ann.py measures recall@10 against exact search)


class IndexCorruptError(RuntimeError):
    """The saved index cannot be read or fails its checks."""


class IndexMismatchError(RuntimeError):
    """The saved index was built with another embedder or other chunking settings."""


class StoreUnavailableError(RuntimeError):
    """The index store cannot be used: its database cannot be reached, or the store setting names none."""


class IndexWriteError(RuntimeError):
    """The index could not be saved (read-only folder, disk full, ...); the previous one is untouched."""


@dataclass(frozen=True)
class Fingerprint:
    embedder: str
    dimension: int
    chunking: dict
    format: int = FORMAT_VERSION
    lexical: int = 1  # bm25_tokens' version; a saved index without one predates LEXICAL_VERSION 2


_BM25_TOKEN = re.compile(r"(?u)\b\w+\b")
# Options, file names, versions and dotted identifiers as a whole ("--trace-children=yes", "-g", "X.680",
# "libtasn1.h"), kept beside their parts: a question naming one should find the chunk that spells it the same way.
_IDENTIFIER = re.compile(r"(?<![\w-])(?:-{1,2}[^\W\d_][\w-]*(?:=[\w.,/:-]*\w)?|\w+(?:[._/:=+-]\w+)+)")
# English function words: they match everywhere and only blur the ranking.
STOP_WORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between both but
by can could did do does doing down during each few for from further had has have having he her here hers herself
him himself his how i if in into is it its itself just me more most my myself no nor not now of off on once only or
other our ours ourselves out over own same she should so some such than that the their theirs them themselves then
there these they this those through to too under until up very was we were what when where which while who whom
why will with would you your yours yourself yourselves
""".split())
LEXICAL_VERSION = 2  # bump when bm25_tokens changes: a persisted lexical index must then be rebuilt


def plain_tokens(text: str) -> list[str]:
    """Lower-cased words, digits and single characters included (the tokeniser before LEXICAL_VERSION 2)."""
    return _BM25_TOKEN.findall(text.lower())


@functools.lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def bm25_tokens(text: str) -> list[str]:
    """Words without stop words, Snowball-stemmed, plus whole identifiers; digits and single letters are kept
    (years, amounts and initials are what lexical search is for). bench/results/lexical.json compares it with
    plain_tokens."""
    lowered = text.lower()
    words = [w for w in _BM25_TOKEN.findall(lowered) if w not in STOP_WORDS]
    # FTS5 splits on anything but letters, digits and "_": identifiers are kept whole as "__trace_children_yes".
    return _stemmer().stemWords(words) + [re.sub(r"\W", "_", i) for i in _IDENTIFIER.findall(lowered)]


# From 1,000 chunks up, query terms found in this share of the chunks or more are left out of a lexical search:
# BM25 as FTS5 computes it gives them no weight (idf floored at 1e-6), yet matching them scores most of the
# corpus; SQuAD dev: same recall, half the time (bench/lexical_engines.py). Below that, a weightless match still
# ranks for RRF.
LEXICAL_MAX_SHARE = 0.5
# A search costs about the sum of its terms' chunk counts; past this sum the commonest terms (least weight) are
# left out. It seldom binds below a million chunks (docs/scaling.md; bench/results/scale.json).
LEXICAL_MAX_POSTINGS = 20_000


def lexical_terms(frequency: dict[str, int], chunk_count: int) -> list[str]:
    """The query terms a lexical search uses, rarest first; frequency: each term's number of chunks (both stores)."""
    limit = LEXICAL_MAX_SHARE * chunk_count if chunk_count >= 1000 else chunk_count + 1
    useful, postings = [], 0
    for term in sorted((t for t, n in frequency.items() if 0 < n < limit), key=frequency.get):
        if useful and postings + frequency[term] > LEXICAL_MAX_POSTINGS:
            break
        useful.append(term)
        postings += frequency[term]
    return useful


def fts_query(tokens: list[str]) -> str:
    """An FTS5 query matching any of the tokens, each quoted so that no token is read as an operator."""
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in dict.fromkeys(tokens))


@dataclass(frozen=True)
class Segment:
    """The vectors one change added; rows are memory-mapped, so only the pages a search touches are read."""

    name: str
    vectors: np.ndarray  # (rows, dimension) float32
    ids: np.ndarray  # (rows,) int64 chunk numbers
    graph: object = None  # a FAISS HNSW index over the rows, for large segments (approximate search)

    def top(self, queries: np.ndarray, k: int, dead: np.ndarray) -> list[list[tuple[int, float]]]:
        """Exact inner product by FAISS straight over the mapped rows (no copy into an index). Under ONNX
        Runtime's threads, a NumPy matrix product took 8 ms here where FAISS took 0.2 ms (3,055 rows)."""
        import faiss

        # One question at a time: FAISS's OpenMP threads only add overhead, tens of ms on a busy machine
        # (bench/results/scale.json). The setting is per thread; qa.durable.save_graph uses every core.
        faiss.omp_set_num_threads(1)
        rows = len(self.ids)
        if rows == 0:
            return [[] for _ in queries]
        k = min(rows, k + len(dead))  # room for tombstoned rows, which are dropped below
        if self.graph is not None:
            self.graph.hnsw.efSearch = max(HNSW_EF_SEARCH, k)
            scores, positions = self.graph.search(queries, k)
        else:
            scores, positions = faiss.knn(queries, self.vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
        results = []
        for row_scores, row_positions in zip(scores, positions):
            found = row_positions >= 0
            ids, row_scores = self.ids[row_positions[found]], row_scores[found]
            live = ~np.isin(ids, dead) if len(dead) else np.ones(len(ids), dtype=bool)
            results.append([(int(i), float(s)) for i, s in zip(ids[live], row_scores[live])])
        return results


class Index:
    """One snapshot of the index: the segments and tombstones as of a commit. Readers keep using a snapshot
    while a writer commits the next one. Chunks and documents are read from the catalog when asked for."""

    def __init__(self, store, fingerprint: Fingerprint, segments: tuple[Segment, ...] = (),
                 dead: np.ndarray | None = None, chunk_count: int = 0, version: int = 0,
                 excluded: tuple[str, ...] = ()):
        self.store = store
        self.fingerprint = fingerprint
        self.segments = segments
        self.dead = dead if dead is not None else np.zeros(0, dtype=np.int64)
        self.version = version
        self.excluded = excluded  # corpus documents the user removed: never re-added by a corpus sync
        self.chunks = ChunkView(store, chunk_count)
        self.documents = DocumentView(store)

    def search(self, query_vectors: np.ndarray, questions: list[str] | None, k: int):
        """Both rankings per question: (dense hits, lexical hits); no lexical search when questions is None."""
        lexical = self.search_bm25(questions, k) if questions is not None else [[] for _ in query_vectors]
        return self.search_dense(query_vectors, k), lexical

    def search_dense(self, query_vectors: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """(chunk number, inner product) best first, exact, per question."""
        queries = np.ascontiguousarray(query_vectors, dtype=np.float32)
        merged: list[list[tuple[int, float]]] = [[] for _ in queries]
        for segment in self.segments:
            for hits, found in zip(merged, segment.top(queries, k, self.dead)):
                hits.extend(found)
        return self._present([sorted(hits, key=lambda pair: -pair[1])[:k] for hits in merged])

    def vectors_of(self, numbers: list[int]) -> np.ndarray:
        """The stored vectors of these chunk numbers (rows of zeros for numbers no segment holds)."""
        out = np.zeros((len(numbers), self.fingerprint.dimension), dtype=np.float32)
        for segment in self.segments:
            ids = np.asarray(segment.ids)
            for row, number in enumerate(numbers):
                at = int(np.searchsorted(ids, number))  # a segment's ids ascend: it is written in number order
                if at < len(ids) and ids[at] == number:
                    out[row] = segment.vectors[at]
        return out

    def search_bm25(self, questions: list[str], k: int) -> list[list[tuple[int, float]]]:
        """(chunk number, BM25 score) best first, per question, from the catalog's FTS5 table."""
        results = []
        for question in questions:
            tokens = bm25_tokens(question)
            results.append(self.store.lexical(tokens, k, len(self.chunks)) if tokens and len(self.chunks) else [])
        return self._present(results)

    def _present(self, results: list[list[tuple[int, float]]]) -> list[list[tuple[int, float]]]:
        """Hits whose chunks still exist, their rows fetched in one query: a document removed since this
        snapshot was taken (by this process or another) drops out instead of failing the lookup."""
        present = self.chunks.fetch({n for hits in results for n, _ in hits})
        return [[(n, s) for n, s in hits if n in present] for hits in results]


class ChunkView:
    """The live chunks, keyed by the chunk numbers the searches return; each read from the catalog."""

    RECENT = 1024  # chunks fetched by the latest searches, kept so that reading them needs no second query

    def __init__(self, store, count: int):
        self.store = store
        self.count = count
        self._recent: OrderedDict[int, Chunk] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.count

    def fetch(self, numbers: set[int]) -> set[int]:
        """Read these chunks into the recent set; returns the numbers that exist."""
        found = self.store.chunks_by_number(sorted(numbers)) if numbers else {}
        with self._lock:
            self._recent.update(found)
            while len(self._recent) > self.RECENT:
                self._recent.popitem(last=False)
        return set(found)

    def __getitem__(self, number: int) -> Chunk:
        with self._lock:
            chunk = self._recent.get(int(number))
        chunk = chunk or self.store.chunk(int(number))
        if chunk is None:
            raise IndexError(f"no chunk number {number} (its document was removed)")
        return chunk

    def __iter__(self):
        return (chunk for _, chunk in self.store.numbered_chunks())

    def __eq__(self, other) -> bool:
        return isinstance(other, (ChunkView, list)) and list(self) == list(other)


class DocumentView(Mapping):
    """The documents by id; a document's text is read from the catalog when it is looked up."""

    def __init__(self, store):
        self.store = store

    def __getitem__(self, document_id: str) -> Document:
        document = self.store.document(document_id)
        if document is None:
            raise KeyError(document_id)
        return document

    def __contains__(self, document_id) -> bool:
        return isinstance(document_id, str) and self.store.has_document(document_id)

    def __iter__(self):
        return iter(sorted(self.store.document_states()))

    def __len__(self) -> int:
        return len(self.store.document_states())


from qa.segments import IndexStore  # noqa: E402  (the writer; it builds the snapshots above)
