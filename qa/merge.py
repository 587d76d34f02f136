"""Merging an index folder's segments in a background thread (see qa.segments.IndexStore).

A merge reads the live rows of the chosen segments and writes them, with an HNSW graph when they are many, as
segments/merging.* with no store lock held: commits go on meanwhile. Only then, under the store lock, it renames
the files to the next segment name and commits one transaction that swaps the segments. Removals committed
during the merge left tombstones on rows of the old segments; those rows are in the new segment under the same
chunk numbers, so the tombstones stay valid and need no copying. Only the tombstones of rows the merge dropped
go. At most one merge runs per folder, across processes: the writer holds .merge.lock (flock) throughout, and
remove_orphans deletes merging.* only when it can take that lock itself (nobody is writing them).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from qa.durable import fsync_dir, load_array, save_array, save_graph, unlink_all
from qa.index import Fingerprint, Index, IndexCorruptError, IndexWriteError

log = logging.getLogger("qa")

MERGING = "merging"  # the stem of the files a merge is writing; renamed to a segment name when it commits


@contextlib.contextmanager
def merge_slot(directory: Path):
    """Yields True while this caller holds the folder's merge lock (no merge, in any process, is writing),
    False when another holds it or the folder is not writable. Non-blocking."""
    handle = None
    try:
        handle = open(directory / ".merge.lock", "a+")
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        if handle is not None:
            handle.close()
        handle = None
    try:
        yield handle is not None
    finally:
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()


class Merger:
    """The store's background merge thread: request() after each commit; wait() until none is pending."""

    def __init__(self, store):
        self.store = store
        self.on_merge: Callable[[Index], None] | None = None  # called with the snapshot after each merge
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None
        self._requested: Fingerprint | None = None

    def request(self, fingerprint: Fingerprint) -> None:
        """Merge if the segments call for it, in the background; returns at once."""
        with self._guard:
            self._requested = fingerprint
            if self._thread is None:
                # Not a daemon: a short-lived process (a CLI add) finishes its merge before it exits.
                self._thread = threading.Thread(target=self._run, name="qa-merge", daemon=False)
                self._thread.start()

    def running(self) -> bool:
        with self._guard:
            return self._thread is not None

    def wait(self) -> None:
        """Until no merge is running or requested. Never call it holding the store lock: a merge's last step
        needs that lock."""
        if self.store.holds_lock():
            raise RuntimeError("wait_for_merge() called while holding the store lock (the merge needs it)")
        while True:
            with self._guard:
                thread = self._thread
            if thread is None:
                return
            thread.join()

    def _run(self) -> None:
        try:
            while True:
                with self._guard:
                    fingerprint, self._requested = self._requested, None
                    if fingerprint is None:
                        self._thread = None
                        return
                try:
                    while self._merge_once(fingerprint):
                        if self.on_merge is not None:
                            self.on_merge(self.store.snapshot(fingerprint))
                except (IndexWriteError, IndexCorruptError, OSError, sqlite3.Error) as error:
                    # The index stays as it was; the next commit asks again.
                    log.warning("index merge abandoned: %s", error)
        except BaseException:
            with self._guard:
                self._thread = None
            raise

    def _merge_once(self, fingerprint: Fingerprint) -> bool:
        """One merge, if the segments call for one and no other merge is writing; True if one was committed."""
        with merge_slot(self.store.directory) as free:
            names = self.plan() if free else []
            if names:
                self._merge(fingerprint, names)
            return bool(names)

    def plan(self) -> list[str]:
        """Tiered: past MAX_SEGMENTS, the smallest segments (and any half dead) become one; and the segments
        searched exactly (under HNSW_MIN_ROWS rows) become one with a graph once they hold HNSW_MIN_ROWS live
        rows together, so exact search never scans more than about that many rows (bench/results/scale.json).
        Each row is merged again only when its segment is among the smallest, so the work per added row stays
        small."""
        from qa import segments

        store = self.store
        dead = np.array([n for (n,) in store._query("select n from tombstones")], dtype=np.int64)
        sizes = []
        for name, total in store._query("select name, rows from segments"):
            ids = load_array(store.segment_dir / f"{name}.ids.npy")
            gone = int(np.isin(ids, dead).sum()) if len(dead) else 0
            sizes.append((total - gone, total, name))
        sizes.sort()
        chosen = [name for live, total, name in sizes if total and (total - live) * 2 > total]
        if len(sizes) > segments.MAX_SEGMENTS:
            chosen += [name for _, _, name in sizes[: len(sizes) - segments.MAX_SEGMENTS // 2] if name not in chosen]
        exact = [(live, name) for live, total, name in sizes if total < segments.HNSW_MIN_ROWS]
        if len(exact) > 1 and sum(live for live, _ in exact) >= segments.HNSW_MIN_ROWS:
            chosen += [name for _, name in exact if name not in chosen]
        return chosen

    def _merge(self, fingerprint: Fingerprint, names: list[str]) -> None:
        """The heavy part unlocked (read, write merging.*, build the graph); then install() under the lock."""
        from qa import segments

        store = self.store
        dead = np.array([n for (n,) in store._query("select n from tombstones")], dtype=np.int64)
        parts, part_ids, dropped = [], [], []
        marks = ",".join("?" * len(names))
        for name, total, size in store._query(f"select name, rows, bytes from segments where name in ({marks})",
                                              names):
            vectors, ids = store.segment_arrays(name, total, size, fingerprint.dimension)
            live = ~np.isin(ids, dead) if len(dead) else np.ones(total, dtype=bool)
            parts.append(np.asarray(vectors[live]))
            part_ids.append(np.asarray(ids[live]))
            dropped.extend(int(n) for n in ids[~live])
        ids = np.concatenate(part_ids)
        order = np.argsort(ids, kind="stable")  # ascending ids: Index.vectors_of finds a row by binary search
        ids = ids[order]
        staged = [store.segment_dir / f"{MERGING}{suffix}" for suffix in (".ids.npy", ".npy", ".hnsw")]
        try:
            save_array(staged[0], ids)
            digest = save_array(staged[1], np.concatenate(parts)[order])
            del parts
            if len(ids) >= segments.HNSW_MIN_ROWS:  # built from the file just written: one copy in memory
                save_graph(staged[2], load_array(staged[1]))
            fsync_dir(store.segment_dir)
            with store.lock():
                self._install(names, staged, ids, digest, dropped)
        except (OSError, sqlite3.OperationalError) as error:
            unlink_all(staged)
            raise IndexWriteError(store._explain(error)) from None

    def _install(self, names: list[str], staged: list[Path], ids: np.ndarray, digest: str,
                 dropped: list[int]) -> None:
        """Under the store lock: rename merging.* to the next segment name and swap the segments in one
        transaction; `dropped` are the rows left out (dead when the merge began), whose tombstones go with
        them. A process killed before the commit leaves files no transaction names (orphans)."""
        store = self.store
        marks = ",".join("?" * len(names))
        if len(store._query(f"select name from segments where name in ({marks})", names)) != len(names):
            unlink_all(staged)  # the index was reset meanwhile
            return
        name = store.next_segment()
        final = [store.segment_dir / f"{name}{p.name[len(MERGING):]}" for p in staged]
        renamed = []
        try:
            if len(ids):
                for source, target in zip(staged, final):
                    if source.exists():
                        source.replace(target)
                        renamed.append(target)
                fsync_dir(store.segment_dir)
            db = store._connection()
            with store._transaction(db):
                db.execute(f"delete from segments where name in ({marks})", names)
                db.executemany("delete from tombstones where n = ?", [(n,) for n in dropped])
                if len(ids):
                    db.execute("insert into segments values (?, ?, ?, ?)",
                               (name, len(ids), final[1].stat().st_size, digest))
        except BaseException:
            unlink_all(renamed)
            raise
        unlink_all(staged)
        store.remove_orphans()
