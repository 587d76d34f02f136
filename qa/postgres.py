"""The index in PostgreSQL with pgvector: for a team whose app processes share one database (docs/scaling.md).

    QA(store="postgresql://qa@db.example/qa")        or  QA_STORE=...  or  qa ... --store URL

Tables (names start with qa_; give each index its own schema with `?options=-csearch_path%3Dname` in the URL):

    qa_meta       fingerprint, version, chunk and token totals (BM25's N and average length)
    qa_documents  id, sha256, source, text, size, mtime, pages
    qa_chunks     n (identity), document, offsets, text, BM25 length, tsv (tsvector of its lexemes, GIN: for
                  full-text queries of your own), tf (each lexeme's count, jsonb), embedding (vector, HNSW)
    qa_postings   (lexeme, chunk) -> count and chunk length: BM25's posting lists, read by index scans
    qa_terms      chunks holding each lexeme (BM25's document frequency), kept in step by every change
    qa_excluded   corpus documents the user removed

Every change is one transaction; writers take an advisory lock, so two processes never interleave. Nothing is
cached between calls: an app process sees the others' changes at its next question. Both rankings come from
SQL: vector distance (HNSW) and BM25 over the posting lists, each ranked; the retriever fuses them by reciprocal
rank as it does for the embedded index. The lexemes are qa.index.bm25_tokens, so both stores match the same
words and give the same BM25 scores.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import threading
from collections import Counter
from dataclasses import asdict

import numpy as np

from qa.catalog import document_from_row
from qa.chunk import Chunk
from qa.index import (ChunkView, DocumentView, Fingerprint, Index, IndexCorruptError, IndexMismatchError,
                      IndexWriteError, StoreUnavailableError, bm25_tokens, lexical_terms)
from qa.load import Document

URL_PREFIXES = ("postgresql://", "postgres://")
LOCK_KEY = 0x5141_696E_6465_78  # the advisory lock writers take ("QAindex")
HNSW_EF_SEARCH = 200  # candidates pgvector's HNSW search keeps (>= Config.candidates); recall@10 in scale.json
# A commit that adds this share of the chunks (and at least BULK_MIN_CHUNKS) is followed by VACUUM ANALYZE: until
# then the posting lists cannot be read from their index alone and the planner's counts are stale (lexical
# search 427 ms instead of 13 ms at 200,000 chunks right after a bulk load; bench/results/scale.json).
BULK_SHARE, BULK_MIN_CHUNKS = 0.1, 1000
BM25_K1, BM25_B = 1.2, 0.75  # the constants FTS5's bm25() uses in the embedded store
CONNECT_SECONDS = 5.0  # how long a call waits for a connection before saying that the database is unreachable

SCHEMA = """
create extension if not exists vector;
create table if not exists qa_meta(key text primary key, value text not null);
create table if not exists qa_documents(id text primary key, sha256 text not null, source text not null,
                                        text text not null, size bigint not null, mtime bigint not null,
                                        pages text not null default '');
create index if not exists qa_documents_sha256 on qa_documents(sha256);
create table if not exists qa_chunks(n bigint generated always as identity primary key, id text not null,
                                     document text not null references qa_documents(id) on delete cascade,
                                     start_char integer not null, end_char integer not null, text text not null,
                                     length integer not null, tsv tsvector not null, tf jsonb not null,
                                     embedding vector({dimension}) not null);
create index if not exists qa_chunks_document on qa_chunks(document);
create index if not exists qa_chunks_tsv on qa_chunks using gin(tsv);
create index if not exists qa_chunks_embedding on qa_chunks using hnsw(embedding vector_ip_ops);
create table if not exists qa_terms(term text primary key, chunks bigint not null);
create table if not exists qa_postings(term text not null, n bigint not null references qa_chunks(n) on delete cascade,
                                       tf integer not null, length integer not null,
                                       primary key (term, n) include (tf, length));
create index if not exists qa_postings_chunk on qa_postings(n);
create table if not exists qa_excluded(id text primary key);
insert into qa_meta values ('version', '0'), ('chunks', '0'), ('tokens', '0') on conflict do nothing;
"""

# The two rankings for one question. Dense: inner product through the HNSW index. Lexical: BM25 as FTS5's bm25()
# computes it (idf floored at 1e-6), over the query lexemes qa.index.lexical_terms keeps (as the embedded store):
# first their chunk counts and the totals; then, in one statement with the dense search, the postings of those
# lexemes summed per chunk, read from the primary key alone (it includes the counts: 4.5 times faster than
# visiting the table at 200,000 chunks). At 24,810 chunks that took 5.7 ms where matching the chunks' tsvector
# (GIN) and reading their jsonb term counts took 29.3 ms (docs/scaling.md).
TERMS = """
select t.term, t.chunks, (select value::float8 from qa_meta where key = 'chunks'),
       (select value::float8 from qa_meta where key = 'tokens')
from qa_terms t where t.term = any(%(terms)s)"""
DENSE = """select 'dense', n, -(embedding <#> %(vector)s::vector) from qa_chunks
           order by embedding <#> %(vector)s::vector limit %(k)s"""
LEXICAL = f"""
select 'lexical', p.n, sum(q.idf * p.tf * ({BM25_K1} + 1) /
                           (p.tf + {BM25_K1} * (1 - {BM25_B} + {BM25_B} * p.length / %(average_length)s))) as score
from unnest(%(terms)s::text[], %(idf)s::float8[]) as q(term, idf) join qa_postings p on p.term = q.term
group by p.n order by score desc limit %(k)s"""


def is_postgres_url(store: str) -> bool:
    return store.startswith(URL_PREFIXES)


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def term_counts(tokens: list[str]) -> Counter:
    return Counter(t for t in map(lexeme, tokens) if t)


def tsvector_literal(counts: Counter) -> str:
    """`'lexeme' 'other'`: the lexemes exactly as given (no parser, no stemming); their counts are kept apart."""
    return " ".join(f"'{t}'" for t in counts)


def lexeme(token: str) -> str:
    """bm25_tokens yields word characters only; quotes and backslashes are dropped all the same, so that a lexeme
    never needs escaping in a tsvector or tsquery literal. A lexeme has at most 2,047 bytes."""
    return token.replace("'", "").replace("\\", "")[:500]


def query_terms(question: str) -> list[str]:
    return [t for t in dict.fromkeys(map(lexeme, bm25_tokens(question))) if t]


def vector_literal(vector: np.ndarray) -> str:
    return "[" + ",".join(map(str, np.asarray(vector, dtype=np.float32).tolist())) + "]"


class PostgresIndex(Index):
    """The index as the database holds it now: searches, counts and documents are read at each call, so another
    process's changes show at once. Its interface is Index's."""

    def __init__(self, store: "PostgresStore", fingerprint: Fingerprint):
        self.store = store
        self.fingerprint = fingerprint
        self.segments = ()
        self.dead = np.zeros(0, dtype=np.int64)
        self.chunks = LiveChunkView(store)
        self.documents = DocumentView(store)

    @property
    def version(self) -> int:
        return self.store.version()

    @property
    def excluded(self) -> tuple[str, ...]:
        return self.store.excluded()

    def search(self, query_vectors: np.ndarray, questions: list[str] | None, k: int):
        dense, lexical = [], []
        for i, vector in enumerate(query_vectors):
            tokens = query_terms(questions[i]) if questions is not None else []
            found = self.store.search(vector, tokens, k)
            dense.append(found["dense"])
            lexical.append(found["lexical"])
        return self._present(dense), self._present(lexical)

    def search_dense(self, query_vectors: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        return self.search(query_vectors, None, k)[0]

    def search_bm25(self, questions: list[str], k: int) -> list[list[tuple[int, float]]]:
        return self._present([self.store.search(None, query_terms(q), k)["lexical"] for q in questions])

    def vectors_of(self, numbers: list[int]) -> np.ndarray:
        return self.store.vectors_of(numbers, self.fingerprint.dimension)


class LiveChunkView(ChunkView):
    def __init__(self, store: "PostgresStore"):
        super().__init__(store, 0)

    def __len__(self) -> int:
        return self.store.chunk_count()


class Connections:
    """Open connections for the threads of one process, reused; at most `limit` at once. A connection the server
    dropped (a restart, a network cut) is discarded, and the next call connects again."""

    def __init__(self, url: str, limit: int):
        self.url = url
        self._idle: list = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(limit)

    @contextlib.contextmanager
    def connection(self, checked: bool = False):
        """checked: make sure a reused connection still works first (before a write, which is never retried)."""
        if not self._slots.acquire(timeout=CONNECT_SECONDS):
            raise TimeoutError(f"all {len(self._idle)} connections stayed busy for {CONNECT_SECONDS:.0f} s")
        try:
            connection = self._reused(checked) or self._connect()
            try:
                yield connection
            finally:
                self._give_back(connection)
        finally:
            self._slots.release()

    def _reused(self, checked: bool):
        import psycopg

        while True:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None or not checked:
                return connection
            try:
                connection.execute("select 1")
                return connection
            except psycopg.Error:
                connection.close()

    def _connect(self):
        import psycopg

        connection = psycopg.connect(self.url, autocommit=True, connect_timeout=max(int(CONNECT_SECONDS), 2))
        connection.execute(f"set hnsw.ef_search = {HNSW_EF_SEARCH}")
        return connection

    def _give_back(self, connection) -> None:
        from psycopg.pq import TransactionStatus

        if connection.closed or connection.broken or connection.info.transaction_status != TransactionStatus.IDLE:
            connection.close()
            return
        with self._lock:
            self._idle.append(connection)

    def discard_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


class PostgresStore:
    """Reads and writes the index tables of one database. Every call takes a connection from a small set kept
    open for the process's threads; nothing else is kept between calls."""

    rebuilds_on_mismatch = False  # a shared index is never wiped because one process is configured differently

    def __init__(self, url: str, connections: int = 16):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise StoreUnavailableError("the PostgreSQL store needs psycopg: pip install 'offline-qa[postgres]'") \
                from None
        logging.getLogger("psycopg").setLevel(logging.ERROR)  # the errors reach the user as one clear line
        self.url = url
        self.where = redacted(url)
        self._connections = Connections(url, connections)
        self._schema_ready = False  # the tables and indexes made (if missing) by this process's first commit
        self._query("select 1")  # unreachable: say so now, not at the first question

    def describe(self) -> str:
        return self.where

    # -- connections and errors ----------------------------------------------------------------------------
    def _unreachable(self, error: Exception) -> StoreUnavailableError:
        lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
        return StoreUnavailableError(f"cannot reach the database {self.where}: "
                                     f"{lines[0] if lines else type(error).__name__}")

    def _query(self, sql: str, params=None) -> list:
        """Rows of one statement; a connection the server dropped since its last use is replaced once."""
        import psycopg

        for attempt in (1, 2):
            try:
                with self._connections.connection() as connection:
                    return connection.execute(sql, params).fetchall()
            except psycopg.errors.UndefinedTable:
                return []
            except (psycopg.OperationalError, psycopg.InterfaceError, TimeoutError) as error:
                self._connections.discard_idle()
                if attempt == 2 or isinstance(error, TimeoutError):
                    raise self._unreachable(error) from None
        return []

    def close(self) -> None:
        self._connections.discard_idle()

    @contextlib.contextmanager
    def lock(self):
        """Exclusive across processes and threads: a session advisory lock on a connection of its own."""
        import psycopg

        with contextlib.ExitStack() as stack:
            try:
                connection = stack.enter_context(self._connections.connection(checked=True))
                connection.execute("select pg_advisory_lock(%s)", (LOCK_KEY,))
            except (psycopg.OperationalError, psycopg.InterfaceError, TimeoutError) as error:
                raise self._unreachable(error) from None
            try:
                yield
            finally:
                with contextlib.suppress(psycopg.Error):  # a lost connection has released the lock already
                    connection.execute("select pg_advisory_unlock(%s)", (LOCK_KEY,))

    # -- reading -------------------------------------------------------------------------------------------
    def exists(self) -> bool:
        return bool(self._query("select 1 from qa_meta where key = 'fingerprint'"))

    def version(self) -> int:
        rows = self._query("select value from qa_meta where key = 'version'")
        return int(rows[0][0]) if rows else 0

    def current(self) -> str | None:
        return f"v{self.version():06d}" if self.exists() else None

    def load(self, fingerprint: Fingerprint) -> PostgresIndex:
        rows = self._query("select value from qa_meta where key = 'fingerprint'")
        if not rows:
            raise IndexCorruptError(f"{self.where}: no index tables")
        try:
            saved = Fingerprint(**json.loads(rows[0][0]))
        except (TypeError, ValueError) as error:
            raise IndexCorruptError(f"{self.where}: unreadable fingerprint ({error})") from None
        if saved != fingerprint:
            raise IndexMismatchError(
                f"the index in {self.where} was built with {saved.embedder} (dimension {saved.dimension}, chunking "
                f"{saved.chunking}); this configuration uses {fingerprint.embedder} (dimension "
                f"{fingerprint.dimension}, chunking {fingerprint.chunking}). A shared index is not rebuilt "
                "automatically: use the same settings, or another database or schema")
        return PostgresIndex(self, saved)

    def snapshot(self, fingerprint: Fingerprint) -> PostgresIndex:
        return PostgresIndex(self, fingerprint)

    def verify(self) -> None:
        """The tables agree with the totals BM25 uses."""
        chunks = self._query("select count(*), coalesce(sum(length), 0) from qa_chunks")[0]
        totals = dict(self._query("select key, value from qa_meta where key in ('chunks', 'tokens')"))
        if (int(totals.get("chunks", 0)), int(totals.get("tokens", 0))) != (chunks[0], chunks[1]):
            raise IndexCorruptError(f"{self.where}: chunk totals {totals} disagree with the table ({chunks})")

    def chunk_count(self) -> int:
        rows = self._query("select value from qa_meta where key = 'chunks'")
        return int(rows[0][0]) if rows else 0

    def chunk_counts(self) -> dict[str, int]:
        return dict(self._query("select document, count(*) from qa_chunks group by document"))

    def excluded(self) -> tuple[str, ...]:
        return tuple(i for (i,) in self._query("select id from qa_excluded order by id"))

    def document_states(self) -> dict[str, tuple[str, str, int, int]]:
        rows = self._query("select id, sha256, source, size, mtime from qa_documents")
        return {r[0]: tuple(r[1:]) for r in rows}

    def has_document(self, document_id: str) -> bool:
        return bool(self._query("select 1 from qa_documents where id = %s", (document_id,)))

    def document(self, document_id: str) -> Document | None:
        rows = self._query("select id, text, sha256, source, pages from qa_documents where id = %s", (document_id,))
        return document_from_row(rows[0]) if rows else None

    def chunk(self, number: int) -> Chunk | None:
        return self.chunks_by_number([number]).get(number)

    def chunks_by_number(self, numbers: list[int]) -> dict[int, Chunk]:
        rows = self._query("select n, id, document, start_char, end_char, text from qa_chunks where n = any(%s)",
                           (list(numbers),))
        return {n: Chunk(*rest) for n, *rest in rows}

    def numbered_chunks(self) -> list[tuple[int, Chunk]]:
        rows = self._query("select n, id, document, start_char, end_char, text from qa_chunks order by n")
        return [(n, Chunk(*rest)) for n, *rest in rows]

    def search(self, vector: np.ndarray | None, tokens: list[str], k: int) -> dict[str, list[tuple[int, float]]]:
        """Dense hits (when a vector is given) and BM25 hits (when there are tokens), best first."""
        params: dict = {"vector": vector_literal(vector) if vector is not None else None, "k": k}
        parts = [f"({DENSE})"] if vector is not None else []
        rows = self._query(TERMS, {"terms": tokens}) if tokens else []
        if rows:
            count, length = rows[0][2], max(rows[0][3] / max(rows[0][2], 1), 1)
            holding = {term: chunks for term, chunks, _, _ in rows}  # chunks holding each lexeme
            terms = lexical_terms({t: holding[t] for t in tokens if t in holding}, int(count))
            idf = [max(math.log((count - holding[t] + 0.5) / (holding[t] + 0.5)), 1e-6) for t in terms]
            if terms:
                parts.append(f"({LEXICAL})")
                params.update(terms=terms, idf=idf, average_length=length)
        found: dict[str, list[tuple[int, float]]] = {"dense": [], "lexical": []}
        for kind, number, score in self._query(" union all ".join(parts), params) if parts else []:
            found[kind].append((int(number), float(score)))
        return found

    def vectors_of(self, numbers: list[int], dimension: int) -> np.ndarray:
        out = np.zeros((len(numbers), dimension), dtype=np.float32)
        rows = dict(self._query("select n, embedding::text from qa_chunks where n = any(%s)", (list(numbers),)))
        for row, number in enumerate(numbers):
            if number in rows:
                out[row] = np.array(rows[number][1:-1].split(","), dtype=np.float32)
        return out

    def rescue_documents(self) -> list[Document]:
        return []  # the database is never reset (rebuilds_on_mismatch), so there is nothing to rescue

    def remove_orphans(self) -> None:
        """Nothing to do: a change is one transaction, so an interrupted one leaves nothing behind."""

    # -- writing (the caller holds lock()) -----------------------------------------------------------------
    def touch(self, document_id: str, source: str, size: int, mtime: int) -> None:
        self._query("update qa_documents set source = %s, size = %s, mtime = %s where id = %s returning id",
                    (source, size, mtime, document_id))

    def reset(self, fingerprint: Fingerprint) -> PostgresIndex:
        """A new, empty index; called only when no index tables exist yet."""
        return self.commit(fingerprint, [], [], None)

    def commit(self, fingerprint: Fingerprint, documents: list[Document], chunks: list[Chunk],
               vectors: np.ndarray | None, remove: list[str] = (), exclude: bool = False,
               stats: dict[str, tuple[int, int]] | None = None) -> PostgresIndex:
        """Add documents (replacing those with the same id) and remove others, in one transaction."""
        import psycopg

        try:
            with self._connections.connection(checked=True) as connection:
                with connection.transaction():
                    if not self._schema_ready:
                        connection.execute(SCHEMA.format(dimension=fingerprint.dimension))
                    connection.execute("insert into qa_meta values ('fingerprint', %s) on conflict (key) do update "
                                       "set value = excluded.value", (json.dumps(asdict(fingerprint)),))
                    connection.execute("update qa_meta set value = (value::bigint + 1)::text where key = 'version'")
                    self._delete(connection, list(remove) + [d.id for d in documents])
                    if exclude:
                        connection.cursor().executemany("insert into qa_excluded values (%s) on conflict do nothing",
                                                        [(i,) for i in remove])
                    connection.execute("delete from qa_excluded where id = any(%s)", ([d.id for d in documents],))
                    self._insert(connection, documents, chunks, vectors, stats or {})
                    total = int(connection.execute("select value from qa_meta where key = 'chunks'").fetchone()[0])
                self._schema_ready = True
                if len(chunks) >= max(BULK_MIN_CHUNKS, BULK_SHARE * total):
                    with contextlib.suppress(psycopg.Error):  # committed already: a failed vacuum changes nothing
                        connection.execute("vacuum (analyze) qa_postings, qa_chunks, qa_terms")
        except (psycopg.OperationalError, psycopg.InterfaceError, TimeoutError) as error:
            raise IndexWriteError(f"{self._unreachable(error)}. Nothing was changed.") from None
        except psycopg.Error as error:
            raise IndexWriteError(f"cannot save the index in {self.where}: {str(error).strip()}. "
                                  "Nothing was changed.") from None
        return PostgresIndex(self, fingerprint)

    @staticmethod
    def _delete(connection, document_ids: list[str]) -> None:
        """The documents' chunks leave the BM25 totals and term counts, then the rows go."""
        if not document_ids:
            return
        connection.execute(
            "with gone as (select term, count(*) as chunks from qa_chunks c, jsonb_object_keys(c.tf) term "
            "where c.document = any(%(ids)s) group by term) "
            "update qa_terms t set chunks = t.chunks - gone.chunks from gone where t.term = gone.term",
            {"ids": document_ids})
        connection.execute("delete from qa_terms where chunks <= 0")
        count, tokens = connection.execute("select count(*), coalesce(sum(length), 0) from qa_chunks "
                                           "where document = any(%s)", (document_ids,)).fetchone()
        PostgresStore._add_totals(connection, -count, -tokens)
        connection.execute("delete from qa_documents where id = any(%s)", (document_ids,))  # chunks cascade

    @staticmethod
    def _add_totals(connection, chunks: int, tokens: int) -> None:
        connection.execute("update qa_meta set value = (value::bigint + case key when 'chunks' then %s else %s end)"
                           "::text where key in ('chunks', 'tokens')", (chunks, tokens))

    @staticmethod
    def _insert(connection, documents, chunks, vectors, stats) -> None:
        connection.cursor().executemany(
            "insert into qa_documents values (%s, %s, %s, %s, %s, %s, %s)",
            [(d.id, d.sha256, d.source, d.text, *stats.get(d.id, (0, 0)), ",".join(map(str, d.pages)))
             for d in documents])
        if not chunks:
            return
        frequency: Counter = Counter()
        tokens_total = 0
        with connection.cursor().copy("copy qa_chunks (id, document, start_char, end_char, text, length, tsv, "
                                      "tf, embedding) from stdin") as copy:
            for chunk, vector in zip(chunks, vectors):
                tokens = bm25_tokens(chunk.text)
                counts = term_counts(tokens)
                tokens_total += len(tokens)
                frequency.update(counts.keys())
                copy.write_row((chunk.id, chunk.document, chunk.start, chunk.end, chunk.text, len(tokens),
                                tsvector_literal(counts), json.dumps(counts, ensure_ascii=False),
                                vector_literal(vector)))
        connection.execute("insert into qa_terms select * from unnest(%s::text[], %s::bigint[]) "
                           "on conflict (term) do update set chunks = qa_terms.chunks + excluded.chunks",
                           (list(frequency), list(frequency.values())))
        connection.execute("insert into qa_postings select t.key, c.n, t.value::integer, c.length "
                           "from qa_chunks c, jsonb_each_text(c.tf) t where c.document = any(%s)",
                           (sorted({c.document for c in chunks}),))
        PostgresStore._add_totals(connection, len(chunks), tokens_total)
