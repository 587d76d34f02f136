"""Files written so that a crash leaves either the old file or the whole new one: staged, fsynced, renamed."""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import os
import threading
from pathlib import Path

import numpy as np


# np.load parses each header with ast.literal_eval, which CPython 3.11 cannot run in two threads at once
# ("AST constructor recursion depth mismatch", python/cpython#106905): a background merge and a commit both load.
_HEADER_LOCK = threading.Lock()


def load_array(path: Path) -> np.ndarray:
    """A .npy file, memory-mapped."""
    with _HEADER_LOCK:
        return np.load(path, mmap_mode="r")


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save_array(path: Path, array: np.ndarray) -> str:
    """Write as .npy in slices (so a full disk raises ENOSPC, not a short write), fsync, rename into place;
    returns the file's sha256."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256()
    staging = path.with_name(path.name + ".tmp")
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(array))
    try:
        with open(staging, "wb") as handle:
            pieces = (array[start:start + 65536].tobytes() for start in range(0, len(array), 65536))
            for piece in itertools.chain([header.getvalue()], pieces):
                handle.write(piece)
                digest.update(piece)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staging, path)
    except BaseException:
        with contextlib.suppress(OSError):
            staging.unlink(missing_ok=True)
        raise
    return digest.hexdigest()


def save_graph(path: Path, vectors: np.ndarray) -> None:
    """An HNSW graph over the rows (inner product), written, fsynced and renamed into place."""
    import faiss

    faiss.omp_set_num_threads(os.cpu_count() or 1)  # this thread's setting (Segment.top sets 1 for searches)
    graph = faiss.IndexHNSWFlat(vectors.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efConstruction = 80
    for start in range(0, len(vectors), 65536):
        graph.add(np.ascontiguousarray(vectors[start:start + 65536], dtype=np.float32))
    staging = path.with_name(path.name + ".tmp")
    try:
        faiss.write_index(graph, str(staging))
        with open(staging, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(staging, path)
    except BaseException:
        unlink_all([staging])
        raise


def unlink_all(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
