"""Writing and reading an index folder: the SQLite catalog and the segments' vector files (see qa.index)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import threading
from dataclasses import asdict
from pathlib import Path

import numpy as np

from qa.chunk import Chunk
from qa.catalog import SCHEMA, document_from_row
from qa.durable import fsync_dir, load_array, save_array, save_graph, unlink_all
from qa.index import (Fingerprint, Index, IndexCorruptError, IndexMismatchError, IndexWriteError,
                      Segment, bm25_tokens, fts_query, lexical_terms)
from qa.load import Document
from qa.merge import MERGING, Merger, merge_slot

MAX_SEGMENTS = 8  # more than this after a change: the smallest are merged into one (qa.merge)
# A segment with at least this many rows also gets an HNSW graph and is searched approximately (bench/ann.py).
HNSW_MIN_ROWS = 200_000


class IndexStore:
    """Reads and writes an index folder. Writers take a lock file, so two processes never interleave."""

    rebuilds_on_mismatch = True  # an index built with other settings is rebuilt from its documents

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.catalog = self.directory / "catalog.sqlite"
        self.segment_dir = self.directory / "segments"
        self._db: sqlite3.Connection | None = None
        self._db_lock = threading.RLock()  # one connection shared by the web server's threads
        self._states: dict | None = None
        self._mapped: dict[str, Segment] = {}
        self._held = threading.local()  # how deep this thread is in lock()
        self.merger = Merger(self)

    # -- connection and locking ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _transaction(self, db: sqlite3.Connection):
        """One SQLite transaction, the commit point of a change: committed whole or rolled back whole."""
        with self._db_lock:
            db.execute("begin immediate")
            try:
                yield
                db.execute("commit")
            except BaseException:
                db.execute("rollback")
                raise

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            if not self.catalog.exists():
                self.directory.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.catalog, check_same_thread=False, isolation_level=None)
            # A rollback journal, not WAL: a WAL database cannot be opened from a read-only folder.
            db.execute("pragma journal_mode=delete")
            db.execute("pragma synchronous=full")
            with contextlib.suppress(sqlite3.OperationalError):  # a new catalog has no lexical table yet
                db.execute("create virtual table temp.terms using fts5vocab(main, lexical, 'row')")
            self._db = db
        return self._db

    def _query(self, sql: str, params=()) -> list:
        with self._db_lock:
            try:
                return self._connection().execute(sql, params).fetchall()
            except sqlite3.DatabaseError as error:
                raise IndexCorruptError(f"{self.catalog}: unreadable ({error})") from None

    def close(self) -> None:
        """Wait for a pending merge, then close the connection."""
        self.wait_for_merge()
        self._disconnect()

    def wait_for_merge(self) -> None:
        """Until no background merge is running (never call it holding lock())."""
        self.merger.wait()

    def _disconnect(self) -> None:
        with self._db_lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    @contextlib.contextmanager
    def lock(self):
        """Exclusive across processes and threads (flock on a file opened per call); re-entrant within a thread.
        A folder we cannot write to is still readable, so go on unlocked: any write will then fail with a clear
        IndexWriteError."""
        if self.holds_lock():
            self._held.depth += 1
            try:
                yield
            finally:
                self._held.depth -= 1
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle = open(self.directory / ".lock", "a+")
        except OSError:
            yield
            return
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            self._held.depth = 1
            yield
        finally:
            self._held.depth = 0
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    def holds_lock(self) -> bool:
        return getattr(self._held, "depth", 0) > 0

    def exists(self) -> bool:
        return self.catalog.is_file()

    def current(self) -> str | None:
        """The committed version, e.g. 'v000012': it changes with every commit and only then."""
        if not self.exists():
            return None
        rows = self._query("select value from meta where key = 'version'")
        return f"v{int(rows[0][0]):06d}" if rows else None

    def _explain(self, error: Exception) -> str:
        text = str(error).lower()
        if getattr(error, "errno", None) == errno.ENOSPC or "full" in text:
            reason = "the disk is full"
        elif getattr(error, "errno", None) in (errno.EROFS, errno.EACCES, errno.EPERM) or "readonly" in text \
                or "read-only" in text or "unable to open" in text:
            reason = "the folder is read-only or not writable"
        else:
            reason = getattr(error, "strerror", None) or str(error)
        return f"cannot save the index in {self.directory}: {reason}. The previous index is unchanged."

    # -- reading -------------------------------------------------------------------------------------------
    def load(self, fingerprint: Fingerprint) -> Index:
        """The committed snapshot; IndexCorruptError or IndexMismatchError say why it cannot be used."""
        if not self.exists():
            raise IndexCorruptError(f"{self.directory}: no catalog")
        rows = dict(self._query("select key, value from meta"))
        try:
            saved = Fingerprint(**json.loads(rows["fingerprint"]))
        except (KeyError, TypeError, ValueError) as error:
            raise IndexCorruptError(f"{self.catalog}: unreadable fingerprint ({error})") from None
        if saved != fingerprint:
            raise IndexMismatchError(
                f"{self.directory} was built with {saved.embedder} (dimension {saved.dimension}, chunking "
                f"{saved.chunking}); this configuration uses {fingerprint.embedder} (dimension "
                f"{fingerprint.dimension}, chunking {fingerprint.chunking})")
        return self.snapshot(saved)

    def snapshot(self, fingerprint: Fingerprint) -> Index:
        segments = []
        for name, rows, size in self._query("select name, rows, bytes from segments order by name"):
            segments.append(self._segment(name, rows, size, fingerprint.dimension))
        self._mapped = {s.name: s for s in segments}
        dead = np.array([n for (n,) in self._query("select n from tombstones order by n")], dtype=np.int64)
        count = self._query("select count(*) from chunks")[0][0]
        version = self._query("select value from meta where key = 'version'")
        excluded = tuple(i for (i,) in self._query("select id from excluded order by id"))
        return Index(self, fingerprint, tuple(segments), dead, count, int(version[0][0]) if version else 0, excluded)

    def _segment(self, name: str, rows: int, size: int, dimension: int) -> Segment:
        if name in self._mapped:
            return self._mapped[name]
        vectors, ids = self.segment_arrays(name, rows, size, dimension)
        graph = None
        if rows >= HNSW_MIN_ROWS:
            import faiss

            try:  # the graph's copy of the vectors stays on disk, mapped, like the segment's own
                graph = faiss.read_index(str(self.segment_dir / f"{name}.hnsw"), faiss.IO_FLAG_MMAP_IFC)
            except RuntimeError as error:
                raise IndexCorruptError(f"{name}: its HNSW graph is unreadable ({error})") from None
        return Segment(name, vectors, ids, graph)

    def segment_arrays(self, name: str, rows: int, size: int, dimension: int) -> tuple[np.ndarray, np.ndarray]:
        """A segment's vectors and chunk numbers, memory-mapped and checked against the catalog's record."""
        path = self.segment_dir / f"{name}.npy"
        try:
            if path.stat().st_size != size:
                raise IndexCorruptError(f"{path}: {path.stat().st_size} bytes, the catalog says {size} (damaged)")
            vectors = load_array(path)
            ids = load_array(self.segment_dir / f"{name}.ids.npy")
        except (OSError, ValueError) as error:
            raise IndexCorruptError(f"{path}: unreadable ({type(error).__name__}: {error})") from None
        if vectors.shape != (rows, dimension) or ids.shape != (rows,):
            raise IndexCorruptError(f"{path}: {vectors.shape} vectors, {ids.shape} ids; expected {rows} rows")
        return vectors, ids

    def verify(self) -> None:
        """Full check: every segment file against its sha256 and the catalog's own integrity (reads it all)."""
        for name, digest in self._query("select name, sha256 from segments"):
            data = (self.segment_dir / f"{name}.npy").read_bytes()
            if hashlib.sha256(data).hexdigest() != digest:
                raise IndexCorruptError(f"{self.segment_dir / name}.npy: checksum mismatch (the file is damaged)")
        if self._query("pragma integrity_check")[0][0] != "ok":
            raise IndexCorruptError(f"{self.catalog}: fails its integrity check")

    def document_states(self) -> dict[str, tuple[str, str, int, int]]:
        """id -> (sha256, source, size, mtime) without the texts; cached until the next commit."""
        states = self._states
        if states is None:
            rows = self._query("select id, sha256, source, size, mtime from documents") if self.exists() else []
            states = self._states = {r[0]: tuple(r[1:]) for r in rows}
        return states

    def has_document(self, document_id: str) -> bool:
        return document_id in self.document_states()

    def chunk_counts(self) -> dict[str, int]:
        """Chunks per document id."""
        return dict(self._query("select document, count(*) from chunks group by document")) if self.exists() else {}

    def describe(self) -> str:
        return str(self.directory)

    def document(self, document_id: str) -> Document | None:
        rows = self._query("select id, text, sha256, source, pages from documents where id = ?", (document_id,))
        return document_from_row(rows[0]) if rows else None

    def chunk(self, number: int) -> Chunk | None:
        rows = self._query("select id, document, start, end, text from chunks where n = ?", (number,))
        return Chunk(*rows[0]) if rows else None

    def chunks_by_number(self, numbers: list[int]) -> dict[int, Chunk]:
        rows = self._query(f"select n, id, document, start, end, text from chunks where n in "
                           f"({','.join('?' * len(numbers))})", numbers)
        return {n: Chunk(*rest) for n, *rest in rows}

    def numbered_chunks(self) -> list[tuple[int, Chunk]]:
        rows = self._query("select n, id, document, start, end, text from chunks order by n")
        return [(n, Chunk(*rest)) for n, *rest in rows]

    def lexical(self, tokens: list[str], k: int, chunk_count: int) -> list[tuple[int, float]]:
        """BM25 (FTS5's bm25()) best first, over the query terms lexical_terms keeps."""
        tokens = list(dict.fromkeys(tokens))
        marks = ",".join("?" * len(tokens))
        found = dict(self._query(f"select term, doc from temp.terms where term in ({marks})", tokens))
        useful = lexical_terms({t: found[t] for t in tokens if t in found}, chunk_count)
        if not useful:
            return []
        rows = self._query("select rowid, bm25(lexical) from lexical where lexical match ? order by bm25(lexical) "
                           "limit ?", (fts_query(useful), k))
        return [(int(n), -float(score)) for n, score in rows]

    def rescue_documents(self) -> list[Document]:
        """Every document the catalog still holds, however damaged the rest is; or those of an index in the
        previous format (generation folders). A damaged or outdated index never costs the user a document."""
        with contextlib.suppress(IndexCorruptError, sqlite3.Error):
            if self.exists():
                columns = {row[1] for row in self._query("pragma table_info(documents)")}
                pages = "pages" if "pages" in columns else "''"  # a catalog from before pages were kept
                rows = self._query(f"select id, text, sha256, source, {pages} from documents")
                return [document_from_row(r) for r in rows]
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            generation = self.directory / (self.directory / "CURRENT").read_text(encoding="utf-8").strip()
            lines = (generation / "documents.jsonl").read_text(encoding="utf-8").splitlines()
            return [Document(**json.loads(line)) for line in lines]
        return []

    # -- writing (the caller holds lock()) -----------------------------------------------------------------
    def touch(self, document_id: str, source: str, size: int, mtime: int) -> None:
        """Record where a corpus file is now, its size and time, when its text is unchanged: nothing to embed."""
        with contextlib.suppress(sqlite3.Error), self._db_lock:
            self._connection().execute("update documents set source = ?, size = ?, mtime = ? where id = ?",
                                       (source, size, mtime, document_id))
            self._states = None

    def reset(self, fingerprint: Fingerprint) -> Index:
        """Start an empty index (after rescue_documents); the old catalog is kept as catalog.old.sqlite."""
        self._disconnect()
        try:
            for suffix in ("", "-wal", "-shm"):
                old = self.directory / f"catalog.sqlite{suffix}"
                if old.exists():
                    os.replace(old, self.directory / f"catalog.old.sqlite{suffix}")
            shutil.rmtree(self.segment_dir, ignore_errors=True)
            for leftover in [*self.directory.glob("gen-*"), self.directory / "CURRENT"]:
                shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)
        except OSError as error:
            raise IndexWriteError(self._explain(error)) from None
        self._mapped, self._states = {}, None
        return self.commit(fingerprint, [], [], None)

    def commit(self, fingerprint: Fingerprint, documents: list[Document], chunks: list[Chunk],
               vectors: np.ndarray | None, remove: list[str] = (), exclude: bool = False,
               stats: dict[str, tuple[int, int]] | None = None) -> Index:
        """Add documents (replacing those with the same id) and remove others, in one transaction; a merge the
        segments then call for runs in the background (qa.merge)."""
        written: list[Path] = []
        try:
            with self.lock():
                db = self._connection()
                if not self._query("select name from sqlite_master where name = 'lexical'"):
                    db.executescript(SCHEMA)
                    self._disconnect()  # reopen, so the connection sees the new lexical table's vocabulary
                    db = self._connection()
                name = self._write_segment(chunks, vectors, written)
                with self._transaction(db):
                    self._apply(db, fingerprint, documents, chunks, name, remove, exclude, stats or {})
        except (OSError, sqlite3.OperationalError) as error:
            unlink_all(written)
            raise IndexWriteError(self._explain(error)) from None
        finally:
            self._states = None
        self.merger.request(fingerprint)
        return self.snapshot(fingerprint)

    def next_segment(self) -> str:
        names = [p.name.split(".")[0] for p in self.segment_dir.iterdir()]
        names += [n for (n,) in self._query("select name from segments")]
        return f"seg-{max((int(n[4:]) for n in names if n.startswith('seg-')), default=0) + 1:06d}"

    def _write_segment(self, chunks: list[Chunk], vectors, written: list[Path]) -> str | None:
        if not chunks:
            return None
        self.segment_dir.mkdir(parents=True, exist_ok=True)
        name = self.next_segment()
        # Numbers are never reused, so a snapshot still in use cannot mistake a new chunk for a removed one.
        counter = self._query("select value from meta where key = 'next_chunk'")
        first = max(int(counter[0][0]) if counter else 1, (self._query("select max(n) from chunks")[0][0] or 0) + 1)
        ids = np.arange(first, first + len(chunks), dtype=np.int64)
        written += [self.segment_dir / f"{name}.ids.npy", self.segment_dir / f"{name}.npy"]
        save_array(written[0], ids)
        digest = save_array(written[1], np.ascontiguousarray(vectors, dtype=np.float32))
        if len(chunks) >= HNSW_MIN_ROWS:
            written.append(self.segment_dir / f"{name}.hnsw")
            save_graph(written[-1], vectors)
        fsync_dir(self.segment_dir)
        self._pending = (name, int(ids[0]), digest, written[1].stat().st_size)
        return name

    def _apply(self, db, fingerprint, documents, chunks, segment, remove, exclude, stats) -> None:
        db.execute("insert or replace into meta values ('fingerprint', ?)", (json.dumps(asdict(fingerprint)),))
        db.execute("insert or ignore into meta values ('version', '0')")
        db.execute("update meta set value = cast(value as integer) + 1 where key = 'version'")
        gone = list(remove) + [d.id for d in documents]
        for document_id in gone:
            numbers = db.execute("select n, segment from chunks where document = ?", (document_id,)).fetchall()
            db.executemany("insert or ignore into tombstones values (?, ?)", numbers)
            db.executemany("delete from lexical where rowid = ?", [(n,) for n, _ in numbers])
            db.execute("delete from chunks where document = ?", (document_id,))
            db.execute("delete from documents where id = ?", (document_id,))
        if exclude:
            db.executemany("insert or ignore into excluded values (?)", [(i,) for i in remove])
        db.executemany("delete from excluded where id = ?", [(d.id,) for d in documents])
        db.executemany("insert into documents values (?, ?, ?, ?, ?, ?, ?)",
                       [(d.id, d.sha256, d.source, d.text, *stats.get(d.id, (0, 0)), ",".join(map(str, d.pages)))
                        for d in documents])
        if segment is None:
            return
        name, first, digest, size = self._pending
        db.execute("insert into segments values (?, ?, ?, ?)", (name, len(chunks), size, digest))
        db.execute("insert or replace into meta values ('next_chunk', ?)", (str(first + len(chunks)),))
        rows = [(first + i, c.id, c.document, c.start, c.end, c.text, name) for i, c in enumerate(chunks)]
        db.executemany("insert into chunks values (?, ?, ?, ?, ?, ?, ?)", rows)
        db.executemany("insert into lexical(rowid, tokens) values (?, ?)",
                       [(first + i, " ".join(bm25_tokens(c.text))) for i, c in enumerate(chunks)])

    def remove_orphans(self) -> None:
        """Delete segment files no committed transaction names (left by a writer killed before its commit); a
        merge's files only when no merge is writing them (call it holding lock(), so no commit is writing)."""
        if not self.segment_dir.is_dir():
            return
        live = {n for (n,) in self._query("select name from segments")}
        with merge_slot(self.directory) as no_merge:
            for path in self.segment_dir.iterdir():
                stem = path.name.split(".")[0]
                if stem not in live and (stem != MERGING or no_merge):
                    path.unlink(missing_ok=True)
