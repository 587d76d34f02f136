"""The documents and their index: kept in step with the corpus folders, changed by adds and removals."""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np

from qa.chunk import Chunk, Chunker
from qa.config import Config
from qa.embed import Embedder
from qa.index import Fingerprint, Index, IndexCorruptError, IndexMismatchError, IndexStore, StoreUnavailableError
from qa.load import Document, DocumentError, iter_corpus_files, load_file

log = logging.getLogger("qa")

CORPUS_SOURCE = "corpus:"  # documents read from the configured corpus folders; the rest were added by hand
BATCH_CHARS = 2_000_000  # a corpus sync commits every this many characters: bounded memory, resumable builds


def open_store(config: Config):
    """The index store Config.store names: empty for the embedded index in Config.index_dir, or a PostgreSQL URL."""
    if not config.store:
        return IndexStore(config.index_dir)
    from qa.postgres import PostgresStore, is_postgres_url

    if not is_postgres_url(config.store):
        raise StoreUnavailableError(f"store: expected a postgresql:// URL (or nothing, for the index folder), "
                         f"got {config.store!r}")
    return PostgresStore(config.store)


def _under_any(path: str, roots: list[Path]) -> bool:
    """Is the file inside one of the configured corpus folders (so its absence there means it was deleted)?"""
    resolved = Path(path).resolve()
    return any(resolved == root or root in resolved.parents for root in roots)


class Library:
    """Owns the documents and the index store. `index` is the latest committed snapshot."""

    def __init__(self, config: Config, embedder: Embedder, chunker: Chunker, fingerprint: Fingerprint):
        self.config = config
        self.embedder = embedder
        self.chunker = chunker
        self.fingerprint = fingerprint
        self.store = open_store(config)
        self.problems: list[str] = []  # files skipped and index repairs made while opening, for display
        self._write_lock = threading.Lock()
        merger = getattr(self.store, "merger", None)  # the embedded store merges its segments in the background
        if merger is not None:
            merger.on_merge = self._merged
        self.index = self._open()

    # -- opening and keeping the index in step with the corpus ----------------------------------------------
    def _open(self) -> Index:
        with self._write_lock, self.store.lock():
            index, rescued = self._load_saved()
            with contextlib.suppress(OSError):
                self.store.remove_orphans()
            roots = [Path(p).resolve() for p in self.config.corpus]

            def from_corpus(source: str) -> bool:  # read from a configured corpus folder, not added by hand
                return source.startswith(CORPUS_SOURCE) and _under_any(source.removeprefix(CORPUS_SOURCE), roots)

            seen, changed = self._changed_files(index)
            self.index = index
            loaded = self._sync_files(changed, seen)
            states = self.store.document_states()
            # Documents rescued from a damaged index come back, except corpus files, which were just re-read.
            back = [d for d in rescued if d.id not in seen and not from_corpus(d.source) and d.id not in states]
            if back:
                self.index, _ = self._commit(back)
            stale = [i for i, state in states.items() if i not in seen and from_corpus(state[1])]
            if stale:
                self.index = self.store.commit(self.fingerprint, [], [], None, remove=stale)
            log.info("index: %d corpus files re-read, %d removed", loaded, len(stale))
            return self.index

    def _merged(self, index: Index) -> None:
        """A background merge committed: serve its snapshot unless a later commit's is already in use."""
        if index.version >= self.index.version:
            self.index = index

    def _load_saved(self) -> tuple[Index, list[Document]]:
        """The saved index if usable; else an empty one plus whatever documents can be rescued from it."""
        if self.store.exists():
            try:
                return self.store.load(self.fingerprint), []
            except IndexMismatchError as error:
                if not self.store.rebuilds_on_mismatch:
                    raise
                self.problems.append(f"rebuilding the index: {error}")
            except IndexCorruptError as error:
                self.problems.append(f"the saved index is damaged and was rebuilt: {error}")
            log.warning(self.problems[-1])
        rescued = self.store.rescue_documents()
        return self.store.reset(self.fingerprint), rescued

    def _changed_files(self, index: Index) -> tuple[set[str], list[tuple[Path, Path, object]]]:
        """Corpus document ids, and the files whose size or modification time differ from the index's record
        (only those are read: an unchanged corpus costs one stat per file)."""
        states = self.store.document_states()
        excluded = set(index.excluded)
        seen: set[str] = set()
        changed = []
        for file, root in iter_corpus_files([p for p in self.config.corpus if Path(p).exists()]):
            document_id = file.relative_to(root).as_posix()
            if document_id in seen:
                self.problems.append(f"{document_id}: a document with this id is already loaded; skipped {file}")
                continue
            seen.add(document_id)
            if document_id in excluded:
                continue
            stat = file.stat()
            state = states.get(document_id)
            if state is None or state[1:] != (CORPUS_SOURCE + str(file), stat.st_size, stat.st_mtime_ns):
                changed.append((file, root, stat))
        return seen, changed

    def _sync_files(self, changed: list, seen: set[str]) -> int:
        """Read the changed files and commit them in batches; a file that cannot be read leaves the index."""
        states = self.store.document_states()
        batch: list[Document] = []
        stats: dict[str, tuple[int, int]] = {}
        size = 0
        for file, root, stat in changed:
            try:
                document = load_file(file, root, self.config.max_file_bytes)
            except DocumentError as error:
                self.problems.append(str(error))
                seen.discard(file.relative_to(root).as_posix())
                continue
            document = replace(document, source=CORPUS_SOURCE + document.source)
            stats[document.id] = (stat.st_size, stat.st_mtime_ns)
            state = states.get(document.id)
            if state is not None and state[0] == document.sha256:  # same text (touched, or the folder moved)
                self.store.touch(document.id, document.source, *stats[document.id])
                continue
            batch.append(document)
            size += len(document.text)
            if size >= BATCH_CHARS:
                self.index, _ = self._commit(batch, stats)
                batch, size = [], 0
        if batch:
            self.index, _ = self._commit(batch, stats)
        return len(changed)

    def _commit(self, documents: list[Document], stats: dict | None = None) -> tuple[Index, list[Chunk]]:
        chunks: list[Chunk] = []
        for document in documents:
            chunks.extend(self.chunker.split(document))
        vectors = self.embedder.embed([c.text for c in chunks], progress=True) if chunks else \
            np.zeros((0, self.embedder.dimension), dtype=np.float32)
        return self.store.commit(self.fingerprint, documents, chunks, vectors, stats=stats), chunks

    # -- documents ------------------------------------------------------------------------------------------
    def documents(self) -> list[Document]:
        index = self.index
        return [index.documents[i] for i in sorted(self.store.document_states())]

    def add(self, documents: list[Document], problems: list[str]) -> tuple[list[str], list[Chunk]]:
        """Index the documents not already indexed (a note in `problems` for each one that is); returns their
        ids and chunks. Raises IndexWriteError and leaves the index as it was when it cannot be saved."""
        with self._write_lock, self.store.lock():
            states = self.store.document_states()  # one read (the PostgreSQL store caches nothing)
            by_hash = {state[0]: i for i, state in states.items()}
            fresh = []
            for document in documents:
                twin = by_hash.get(document.sha256)
                if twin is not None:
                    problems.append(f"{document.id}: already indexed" +
                                    (" (same content)" if twin == document.id else f" with the same content as {twin}"))
                    continue
                by_hash[document.sha256] = document.id
                fresh.append(document)
            if len(states) + len(fresh) > self.config.max_documents:
                raise DocumentError(f"the index is limited to {self.config.max_documents} documents")
            if not fresh:
                return [], []
            self.index, chunks = self._commit(fresh)
            return [d.id for d in fresh], chunks

    def remove(self, document_id: str) -> None:
        with self._write_lock, self.store.lock():
            state = self.store.document_states().get(document_id)
            if state is None:
                raise KeyError(f"no document with id {document_id!r} is indexed")
            self.index = self.store.commit(self.fingerprint, [], [], None, remove=[document_id],
                                           exclude=state[1].startswith(CORPUS_SOURCE))

    def wait_for_changes(self) -> bool:
        """Block while a change (an add, a removal) is being written; True if one was."""
        if not self._write_lock.locked():
            return False
        with self._write_lock:
            return True

    def restore(self, document_id: str) -> list[Chunk]:
        """Index again a corpus document that remove() took out; returns its chunks."""
        if document_id not in self.index.excluded:
            raise KeyError(f"{document_id!r} was not removed")
        for file, root in iter_corpus_files([p for p in self.config.corpus if Path(p).exists()]):
            if file.relative_to(root).as_posix() == document_id:
                document = load_file(file, root, self.config.max_file_bytes)
                stat = file.stat()
                with self._write_lock, self.store.lock():
                    self.index, chunks = self._commit([replace(document, source=CORPUS_SOURCE + document.source)],
                                                      {document.id: (stat.st_size, stat.st_mtime_ns)})
                return chunks
        raise DocumentError(f"{document_id}: no longer in the corpus folders, so it cannot be restored")
