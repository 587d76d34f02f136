"""The searchable index: FAISS (inner product on normalised vectors) plus BM25, saved atomically to a folder.

On disk, a folder holds numbered generations and a CURRENT file naming the live one:

    index/CURRENT            -> "gen-000007"
    index/gen-000007/manifest.json   fingerprint, documents, and a sha256 of every other file
    index/gen-000007/documents.jsonl the documents' text (answers point into it)
    index/gen-000007/chunks.jsonl
    index/gen-000007/vectors.faiss

A save writes a new generation folder (every file fsynced), then replaces CURRENT with an atomic rename.
A process killed at any point leaves CURRENT naming either the old complete generation or the new one.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import fcntl
import hashlib
import json
import os
import re
import shutil
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from qa.chunk import Chunk
from qa.load import Document

FORMAT_VERSION = 1
_GENERATION = re.compile(r"^gen-(\d{6,})$")


class IndexCorruptError(RuntimeError):
    """The saved index cannot be read or fails its checksums."""


class IndexMismatchError(RuntimeError):
    """The saved index was built with another embedder or other chunking settings."""


class IndexWriteError(RuntimeError):
    """The index could not be saved (read-only folder, disk full, ...); the previous one is untouched."""


@dataclass(frozen=True)
class Fingerprint:
    embedder: str
    dimension: int
    chunking: dict
    format: int = FORMAT_VERSION


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
    return _stemmer().stemWords(words) + _IDENTIFIER.findall(lowered)


@dataclass
class Index:
    """One immutable snapshot: readers use it while a writer builds the next one."""

    fingerprint: Fingerprint
    documents: dict[str, Document] = field(default_factory=dict)
    chunks: list[Chunk] = field(default_factory=list)
    vectors: np.ndarray | None = None
    excluded: tuple[str, ...] = ()  # corpus documents the user removed: never re-added by a corpus sync

    def __post_init__(self) -> None:
        import faiss

        if self.vectors is None:
            self.vectors = np.zeros((0, self.fingerprint.dimension), dtype=np.float32)
        if len(self.vectors) != len(self.chunks):
            raise IndexCorruptError(f"{len(self.chunks)} chunks but {len(self.vectors)} vectors")
        self.faiss = faiss.IndexFlatIP(self.fingerprint.dimension)
        if len(self.vectors):
            self.faiss.add(self.vectors)
        self._bm25 = None
        self._bm25_lock = threading.Lock()

    # -- search ---------------------------------------------------------------------------------------------
    def search_dense(self, query_vectors: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        if not self.chunks:
            return [[] for _ in range(len(query_vectors))]
        scores, ids = self.faiss.search(np.ascontiguousarray(query_vectors, dtype=np.float32), min(k, len(self.chunks)))
        return [[(int(i), float(s)) for i, s in zip(row_ids, row_scores) if i >= 0]
                for row_ids, row_scores in zip(ids, scores)]

    def bm25(self):
        """Built on first use (a corpus of 2,000 paragraphs takes well under a second)."""
        with self._bm25_lock:
            if self._bm25 is None and self.chunks:
                import bm25s

                model = bm25s.BM25()
                model.index([bm25_tokens(c.text) or ["\u2205"] for c in self.chunks], show_progress=False)
                self._bm25 = model
            return self._bm25

    def search_bm25(self, questions: list[str], k: int) -> list[list[tuple[int, float]]]:
        model = self.bm25()
        if model is None:
            return [[] for _ in questions]
        results = []
        vocabulary = model.vocab_dict
        for question in questions:
            tokens = [t for t in bm25_tokens(question) if t in vocabulary]
            if not tokens:
                results.append([])
                continue
            ids, scores = model.retrieve([tokens], k=min(k, len(self.chunks)), show_progress=False, n_threads=1)
            results.append([(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if s > 0])
        return results

    # -- changes (each returns a new snapshot) --------------------------------------------------------------
    def with_documents(self, documents: list[Document], chunks: list[Chunk], vectors: np.ndarray) -> "Index":
        replaced = {d.id for d in documents}
        keep = [i for i, c in enumerate(self.chunks) if c.document not in replaced]
        merged_docs = {k: v for k, v in self.documents.items() if k not in replaced}
        merged_docs.update({d.id: d for d in documents})
        return Index(
            fingerprint=self.fingerprint,
            documents=merged_docs,
            chunks=[self.chunks[i] for i in keep] + list(chunks),
            vectors=np.concatenate([self.vectors[keep], vectors.astype(np.float32)]) if len(keep) else
            np.ascontiguousarray(vectors, dtype=np.float32),
            excluded=tuple(e for e in self.excluded if e not in replaced),
        )

    def without_documents(self, document_ids: list[str], exclude: bool = False) -> "Index":
        gone = set(document_ids)
        keep = [i for i, c in enumerate(self.chunks) if c.document not in gone]
        return Index(
            fingerprint=self.fingerprint,
            documents={k: v for k, v in self.documents.items() if k not in gone},
            chunks=[self.chunks[i] for i in keep],
            vectors=self.vectors[keep],
            excluded=tuple(sorted(set(self.excluded) | gone)) if exclude else self.excluded,
        )


# -- persistence ----------------------------------------------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_file(path: Path, data: bytes) -> str:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return hashlib.sha256(data).hexdigest()


def _jsonl(rows) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


class IndexStore:
    """Reads and writes an index folder. Writers take a lock file, so two processes never interleave."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    @contextlib.contextmanager
    def lock(self):
        """Exclusive across processes. A folder we cannot write to is still readable, so go on unlocked:
        any write will then fail with a clear IndexWriteError."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle = open(self.directory / ".lock", "a+")
        except OSError:
            yield
            return
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    def generations(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.name for p in self.directory.iterdir() if _GENERATION.match(p.name) and p.is_dir())

    def current(self) -> str | None:
        pointer = self.directory / "CURRENT"
        if pointer.is_file():
            return pointer.read_text(encoding="utf-8").strip() or None
        return None

    def exists(self) -> bool:
        return self.current() is not None or bool(self.generations())

    def _explain(self, error: OSError) -> str:
        if error.errno == errno.ENOSPC:
            reason = "the disk is full"
        elif error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            reason = "the folder is read-only or not writable"
        else:
            reason = error.strerror or str(error)
        return f"cannot save the index in {self.directory}: {reason}. The previous index is unchanged."

    def save(self, index: Index) -> str:
        with self.lock():
            return self.write(index)

    def write(self, index: Index) -> str:
        """Save as the new live generation; the caller holds lock()."""
        try:
            return self._write(index)
        except OSError as error:
            raise IndexWriteError(self._explain(error)) from None

    def _write(self, index: Index) -> str:
        import faiss

        existing = self.generations()
        number = int(_GENERATION.match(existing[-1]).group(1)) + 1 if existing else 1
        name = f"gen-{number:06d}"
        staging = self.directory / f".staging-{name}-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            checksums = {
                "documents.jsonl": _write_file(staging / "documents.jsonl", _jsonl(asdict(d) for d in index.documents.values())),
                "chunks.jsonl": _write_file(staging / "chunks.jsonl", _jsonl(asdict(c) for c in index.chunks)),
                "vectors.faiss": _write_file(staging / "vectors.faiss", faiss.serialize_index(index.faiss).tobytes()),
            }
            manifest = {
                "fingerprint": asdict(index.fingerprint),
                "documents": {d.id: d.sha256 for d in index.documents.values()},
                "excluded": list(index.excluded),
                "chunks": len(index.chunks),
                "files": checksums,
            }
            _write_file(staging / "manifest.json", json.dumps(manifest, indent=1, ensure_ascii=False).encode())
            _fsync_dir(staging)
            staging.rename(self.directory / name)
            _fsync_dir(self.directory)
            pointer = self.directory / f".CURRENT.{os.getpid()}.tmp"
            _write_file(pointer, name.encode())
            os.replace(pointer, self.directory / "CURRENT")
            _fsync_dir(self.directory)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        # Only now that CURRENT names the new generation may the old ones go; keep one back for safety.
        for old in existing[:-1]:
            shutil.rmtree(self.directory / old, ignore_errors=True)
        for leftover in self.directory.glob(".staging-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        return name

    def _verified(self, folder: Path, files: list[str] | None = None) -> tuple[dict, dict[str, bytes]]:
        """The manifest and the named files (default: all) of one generation, checked against their sha256."""
        try:
            manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
            blobs = {}
            for file, digest in manifest["files"].items():
                if files is not None and file not in files:
                    continue
                data = (folder / file).read_bytes()
                if hashlib.sha256(data).hexdigest() != digest:
                    raise IndexCorruptError(f"{folder / file}: checksum mismatch (the file is damaged)")
                blobs[file] = data
            return manifest, blobs
        except IndexCorruptError:
            raise
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise IndexCorruptError(f"{folder}: unreadable ({type(error).__name__}: {error})") from None

    def rescue_documents(self) -> list[Document]:
        """The documents of the newest generation whose documents file is intact: a damaged or outdated
        index never costs the user a document."""
        for name in reversed(self.generations()):
            try:
                _, blobs = self._verified(self.directory / name, ["documents.jsonl"])
                return [Document(**json.loads(line)) for line in blobs["documents.jsonl"].decode().splitlines()]
            except (IndexCorruptError, ValueError, TypeError, KeyError):
                continue
        return []

    def load(self, fingerprint: Fingerprint) -> Index:
        """The live generation; IndexCorruptError or IndexMismatchError say why it cannot be used."""
        import faiss

        name = self.current()
        if name is None:
            raise IndexCorruptError(f"{self.directory}: no CURRENT file")
        folder = self.directory / name
        if not _GENERATION.match(name) or not folder.is_dir():
            raise IndexCorruptError(f"{self.directory}: CURRENT names {name!r}, which does not exist")
        manifest, blobs = self._verified(folder)
        try:
            saved = Fingerprint(**manifest["fingerprint"])
        except (KeyError, TypeError) as error:
            raise IndexCorruptError(f"{folder}: unreadable manifest ({error})") from None
        if saved != fingerprint:
            raise IndexMismatchError(
                f"{self.directory} was built with {saved.embedder} (dimension {saved.dimension}, chunking "
                f"{saved.chunking}); this configuration uses {fingerprint.embedder} (dimension "
                f"{fingerprint.dimension}, chunking {fingerprint.chunking})"
            )
        try:
            documents = [Document(**json.loads(line)) for line in blobs["documents.jsonl"].decode().splitlines()]
            chunks = [Chunk(**json.loads(line)) for line in blobs["chunks.jsonl"].decode().splitlines()]
            flat = faiss.deserialize_index(np.frombuffer(blobs["vectors.faiss"], dtype=np.uint8))
            vectors = flat.reconstruct_n(0, flat.ntotal) if flat.ntotal else None
        except (ValueError, TypeError, KeyError, RuntimeError) as error:
            raise IndexCorruptError(f"{folder}: unreadable ({type(error).__name__}: {error})") from None
        return Index(fingerprint=saved, documents={d.id: d for d in documents}, chunks=chunks, vectors=vectors,
                     excluded=tuple(manifest.get("excluded", ())))
