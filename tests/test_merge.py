"""Background merges: commits do not wait for them, removals made meanwhile hold, a killed merge leaves no trace."""

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from qa.index import IndexStore
from qa import segments  # after qa.index, which imports it at its end
from tests.index_builders import add, assert_consistent, fingerprint, make_parts

ROOT = str(Path(__file__).resolve().parent.parent)
FP = fingerprint(16)


@pytest.fixture()
def small_merges(monkeypatch):
    """Merges at toy sizes: two segments of 3,000 rows together call for a merge, which builds an HNSW graph."""
    monkeypatch.setattr(segments, "MAX_SEGMENTS", 2)
    monkeypatch.setattr(segments, "HNSW_MIN_ROWS", 3000)


def merging_files(folder: Path) -> set[str]:
    return {p.name for p in (folder / "segments").glob("merging*")}


def wait_for(condition, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_commits_return_while_a_merge_runs_and_removals_made_meanwhile_hold(tmp_path, small_merges):
    store = IndexStore(tmp_path)
    with store.lock():  # a merge commits under this lock: while the test holds it, the merge cannot finish
        add(store, range(1000), dimension=16)
        add(store, range(1000, 1500), dimension=16)  # 3,000 rows in two exact segments: a merge starts
        wait_for(lambda: "merging.hnsw" in merging_files(tmp_path))  # its vectors and graph are written
        store.remove_orphans()  # must leave the files a merge is writing alone
        assert merging_files(tmp_path) == {"merging.npy", "merging.ids.npy", "merging.hnsw"}
        index = add(store, [2000], dimension=16)
        assert store.merger.running() and "doc2000.txt" in index.documents
        index = store.commit(FP, [], [], None, remove=["doc0007.txt", "doc1200.txt"])
        removed = [n for n, in store._query("select n from tombstones")]
        assert len(removed) == 4 and store.merger.running()
    store.wait_for_merge()
    index = store.snapshot(FP)
    graphs = [s for s in index.segments if s.graph is not None]
    assert [len(s.ids) for s in graphs] == [3000] and not merging_files(tmp_path)
    assert set(removed) <= set(index.dead.tolist())  # tombstones of the old segments' rows still apply
    assert "doc0007.txt" not in index.documents and "doc1200.txt" not in index.documents
    assert_consistent(index)  # every live vector row has its chunk: no removed row came back
    _, _, vectors = make_parts([7, 1200], dimension=16)
    for hits in index.search_dense(vectors, 20):
        assert {index.chunks[n].document for n, _ in hits}.isdisjoint({"doc0007.txt", "doc1200.txt"})
    files = {p.name.split(".")[0] for p in (tmp_path / "segments").iterdir()}
    assert files == {s.name for s in index.segments}  # the merged-away segments' files are deleted
    assert_consistent(IndexStore(tmp_path).load(FP))


def test_a_merge_does_not_hold_the_store_lock_while_it_builds(tmp_path, monkeypatch):
    """Another store on the folder (as another process would) commits while the merge's graph is built."""
    monkeypatch.setattr(segments, "MAX_SEGMENTS", 2)
    monkeypatch.setattr(segments, "HNSW_MIN_ROWS", 20_000)  # a graph over 20,000 rows: seconds to build
    store = IndexStore(tmp_path)
    add(store, range(5000), dimension=64, chunks_per_document=3)
    add(store, range(5000, 7000), dimension=64, chunks_per_document=3)
    other = IndexStore(tmp_path)
    during = 0
    for n in range(9000, 9100):
        before = bool(merging_files(tmp_path))
        with other.lock():
            add(other, [n], dimension=64)
        during += before and bool(merging_files(tmp_path))
        if not store.merger.running():
            break
    assert during >= 1, "no commit went through while the merge was being written"
    store.wait_for_merge()
    other.wait_for_merge()
    index = IndexStore(tmp_path).load(fingerprint(64))
    assert len(index.documents) == 7000 + n - 8999 and max(len(s.ids) for s in index.segments) >= 20_000
    assert_consistent(index)


_MERGER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from tests.index_builders import add
    from qa import segments
    segments.MAX_SEGMENTS, segments.HNSW_MIN_ROWS = 2, 3000
    store = segments.IndexStore({folder!r})
    add(store, range(1000), dimension=16)
    with store.lock():
        add(store, range(1000, 1500), dimension=16)  # a merge starts; it cannot commit while this holds the lock
        print("merging", flush=True)
        time.sleep(60)
""")


def test_a_process_killed_during_a_merge_leaves_the_last_commit_and_the_next_open_cleans_up(tmp_path, small_merges):
    folder = tmp_path / "index"
    child = subprocess.Popen([sys.executable, "-c", _MERGER.format(root=ROOT, folder=str(folder))],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "merging"
        wait_for(lambda: "merging.hnsw" in merging_files(folder))
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    store = IndexStore(folder)
    index = store.load(FP)
    assert len(index.segments) == 2 and all(s.graph is None for s in index.segments)  # as last committed
    assert len(index.documents) == 1500
    assert_consistent(index)
    assert merging_files(folder)  # the killed merge's files, which nobody is writing now
    with store.lock():
        store.remove_orphans()
    assert {p.name.split(".")[0] for p in (folder / "segments").iterdir()} == {s.name for s in index.segments}
    add(store, [5000], dimension=16)  # the next commit merges again
    store.wait_for_merge()
    index = store.snapshot(FP)
    assert [(len(s.ids), s.graph is not None) for s in index.segments] == [(3002, True)]
    assert_consistent(index)
    store.verify()
    np.testing.assert_array_equal(index.vectors_of([1])[0], make_parts([0], dimension=16)[2][0])
