import contextlib
import json
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from qa.chunk import Chunk
from qa.index import IndexCorruptError, IndexMismatchError, IndexStore, IndexWriteError
from qa.load import make_document
from qa.segments import MAX_SEGMENTS
from tests.index_builders import FINGERPRINT, add, assert_consistent, document_ids, fingerprint, make_parts

ROOT = str(Path(__file__).resolve().parent.parent)


def segment_files(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (folder / "segments").iterdir()}


def test_save_and_load_round_trip(tmp_path):
    index = add(IndexStore(tmp_path), range(5))
    loaded = IndexStore(tmp_path).load(FINGERPRINT)
    assert document_ids(loaded) == document_ids(index) == [f"doc{i:04d}.txt" for i in range(5)]
    assert loaded.documents["doc0003.txt"] == index.documents["doc0003.txt"]
    assert loaded.chunks == index.chunks and len(loaded.chunks) == 10
    assert_consistent(loaded)
    _, _, vectors = make_parts([2])
    hits = loaded.search_dense(vectors[:1], 2)[0]
    assert {loaded.chunks[n].document for n, _ in hits} == {"doc0002.txt"}
    assert isinstance(loaded.segments[0].vectors, np.memmap)  # read from disk on demand, not loaded


def test_an_add_writes_one_segment_and_touches_no_other(tmp_path):
    store = IndexStore(tmp_path)
    add(store, range(20))
    before = segment_files(tmp_path)
    index = add(store, [20])
    after = segment_files(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before  # old segments untouched
    assert len(after) == len(before) + 2  # the new segment's vectors and ids
    assert len(index.segments) == 2 and len(index.chunks) == 42
    assert_consistent(index)


def test_removal_leaves_tombstones_that_searches_never_return(tmp_path):
    store = IndexStore(tmp_path)
    add(store, range(4))
    before = segment_files(tmp_path)
    index = store.commit(FINGERPRINT, [], [], None, remove=["doc0002.txt"], exclude=True)
    assert segment_files(tmp_path) == before  # a removal rewrites no vectors
    assert len(index.dead) == 2 and index.excluded == ("doc0002.txt",)
    assert "doc0002.txt" not in index.documents and len(index.chunks) == 6
    _, _, vectors = make_parts([2])
    hits = index.search_dense(vectors[:1], 8)[0]
    assert len(hits) == 6 and all(index.chunks[n].document != "doc0002.txt" for n, _ in hits)
    assert index.chunks[index.search_bm25(["Document 1 says hello"], 8)[0][0][0]].document == "doc0001.txt"
    lexical = index.search_bm25(["Document 2 says hello"], 8)[0]  # its full-text entries went with it
    assert len(lexical) == 6 and all(index.chunks[n].document != "doc0002.txt" for n, _ in lexical)
    assert_consistent(index)


def test_replacing_a_document_keeps_one_copy(tmp_path):
    store = IndexStore(tmp_path)
    add(store, range(3))
    new = make_document("doc0001.txt", "Document 1 was rewritten.")
    _, _, vectors = make_parts([1], chunks_per_document=1)
    index = store.commit(FINGERPRINT, [new], [Chunk("doc0001.txt#0", "doc0001.txt", 0, 10, new.text[:10])], vectors)
    assert index.documents["doc0001.txt"].text == "Document 1 was rewritten." and len(index.chunks) == 5
    assert_consistent(index)


def test_many_small_adds_are_merged_into_few_segments(tmp_path):
    store = IndexStore(tmp_path)
    add(store, range(50))
    for n in range(50, 50 + 3 * MAX_SEGMENTS):
        index = add(store, [n])
        if n % 3 == 0:
            index = store.commit(FINGERPRINT, [], [], None, remove=[f"doc{n - 1:04d}.txt"])
        store.wait_for_merge()  # merges run in the background
        index = store.snapshot(FINGERPRINT)
        assert len(index.segments) <= MAX_SEGMENTS
        assert_consistent(index)
    assert len(index.documents) == 50 + 3 * MAX_SEGMENTS - MAX_SEGMENTS
    assert len(index.dead) < 2 * MAX_SEGMENTS  # merged segments leave their tombstones behind
    files = {p.name.split(".")[0] for p in (tmp_path / "segments").iterdir()}
    assert files == {s.name for s in index.segments}  # merged-away segments' files are deleted
    assert_consistent(IndexStore(tmp_path).load(FINGERPRINT))


@pytest.mark.parametrize("damage", ["truncate_segment", "missing_segment", "garbage_catalog", "wrong_shape"])
def test_damaged_index_is_reported_clearly(tmp_path, damage):
    store = IndexStore(tmp_path)
    index = add(store, range(3))
    store.close()
    segment = tmp_path / "segments" / f"{index.segments[0].name}.npy"
    if damage == "truncate_segment":
        segment.write_bytes(segment.read_bytes()[:100])
    elif damage == "missing_segment":
        segment.unlink()
    elif damage == "garbage_catalog":
        (tmp_path / "catalog.sqlite").write_bytes(b"\x00\xffnot a database" * 100)
    else:
        np.save(segment, np.zeros((5, 8), dtype=np.float32))  # a whole file, of the wrong shape
    with pytest.raises(IndexCorruptError) as caught:
        IndexStore(tmp_path).load(FINGERPRINT)
    assert str(tmp_path) in str(caught.value)


def test_a_flipped_byte_is_found_by_verify(tmp_path):
    index = add(IndexStore(tmp_path), range(3))
    segment = tmp_path / "segments" / f"{index.segments[0].name}.npy"
    data = bytearray(segment.read_bytes())
    data[-5] ^= 0xFF
    segment.write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError, match="checksum"):
        IndexStore(tmp_path).verify()


def test_index_from_another_embedder_is_refused_with_both_names(tmp_path):
    add(IndexStore(tmp_path), range(2))
    with pytest.raises(IndexMismatchError, match="test-embedder.*another-embedder"):
        IndexStore(tmp_path).load(fingerprint().__class__("another-embedder", 8, {"max_tokens": 10}))


def test_documents_survive_damaged_vectors_and_an_old_format_index(tmp_path):
    index = add(IndexStore(tmp_path / "new"), range(4))
    (tmp_path / "new" / "segments" / f"{index.segments[0].name}.npy").write_bytes(b"junk")
    assert sorted(d.id for d in IndexStore(tmp_path / "new").rescue_documents()) == [f"doc{i:04d}.txt" for i in range(4)]
    old = tmp_path / "old" / "gen-000003"
    old.mkdir(parents=True)
    documents, _, _ = make_parts([7])
    (old / "documents.jsonl").write_text(json.dumps(documents[0].__dict__) + "\n")
    (tmp_path / "old" / "CURRENT").write_text("gen-000003")
    store = IndexStore(tmp_path / "old")
    assert store.rescue_documents() == documents
    store.reset(FINGERPRINT)
    assert not (tmp_path / "old" / "CURRENT").exists() and not old.exists()


def test_bm25_finds_exact_numbers_and_names(tmp_path):
    documents = [make_document(f"d{i}", t) for i, t in enumerate(
        ["The budget was 4,512 dollars in 1997.", "Nothing about money here.", "Zyxw met Abcd in Paris."])]
    chunks = [Chunk(f"{d.id}#0", d.id, 0, len(d.text), d.text) for d in documents]
    index = IndexStore(tmp_path).commit(fingerprint(4), documents, chunks, np.eye(3, 4, dtype=np.float32))
    assert index.chunks[index.search_bm25(["what happened in 1997"], 3)[0][0][0]].document == "d0"
    assert index.chunks[index.search_bm25(["who is Zyxw"], 3)[0][0][0]].document == "d2"
    assert index.search_bm25(["qqqq"], 3) == [[]]
    assert index.search_bm25(['"quoted" OR NOT (operators) NEAR*'], 3)[0] == []  # tokens, never query syntax


def test_a_segment_file_no_commit_names_is_removed(tmp_path):
    store = IndexStore(tmp_path)
    add(store, range(2))
    stray = tmp_path / "segments" / "seg-000099.npy"
    np.save(stray, np.zeros((2, 8), dtype=np.float32))
    store.remove_orphans()
    assert not stray.exists() and len(store.load(FINGERPRINT).chunks) == 4


_SAVER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from tests.index_builders import add
    from qa.index import IndexStore
    from tests.index_builders import fingerprint
    store = IndexStore({folder!r})
    print("ready", flush=True)
    for n in range({start}, {start} + 6):
        with store.lock():
            add(store, [n], dimension=64, chunks_per_document=20)
            if n % 2:
                store.commit(fingerprint(64), [], [], None, remove=["doc%04d.txt" % (n - 1)])
    print("done", flush=True)
    time.sleep(30)
""")


@pytest.mark.slow
def test_sigkill_during_segment_adds_and_removals_never_leaves_a_broken_index(tmp_path):
    """Kill a process that is adding segments, removing and merging, at 50 different moments; the index must
    always load, whole, with every document committed before the kill."""
    folder = tmp_path / "index"
    add(IndexStore(folder), range(3), dimension=64, chunks_per_document=20)
    rng = random.Random(7)
    versions_seen = set()
    for attempt in range(50):
        before = IndexStore(folder).load(fingerprint(64))
        start = 3 + attempt * 6
        child = subprocess.Popen([sys.executable, "-c", _SAVER.format(root=ROOT, folder=str(folder), start=start)],
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.15))  # the six adds take about that long
        child.send_signal(signal.SIGKILL)
        child.wait()
        store = IndexStore(folder)
        after = store.load(fingerprint(64))  # must not raise
        assert_consistent(after)
        assert set(before.documents) - set(after.documents) <= {f"doc{n:04d}.txt" for n in range(start - 1, start + 6)}
        with store.lock():
            store.remove_orphans()
        store.verify()
        versions_seen.add(store.current())
        store.close()
    assert len(versions_seen) > 10, "the kills should land while changes are in progress"


@contextlib.contextmanager
def mounted_tmpfs(path: Path, options: str):
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_disk_full_gives_a_clear_error_and_keeps_the_old_index(tmp_path):
    with mounted_tmpfs(tmp_path / "small", "size=512k") as folder:
        store = IndexStore(folder)
        add(store, range(2))
        with pytest.raises(IndexWriteError, match="disk is full.*previous index is unchanged"):
            add(store, range(2, 402), dimension=8, chunks_per_document=40)
        reopened = IndexStore(folder)
        assert document_ids(reopened.load(FINGERPRINT)) == ["doc0000.txt", "doc0001.txt"]
        assert {p.name.split(".")[0] for p in (folder / "segments").iterdir()} == \
            {s.name for s in reopened.load(FINGERPRINT).segments}


def test_read_only_folder_gives_a_clear_error_and_keeps_the_old_index(tmp_path):
    with mounted_tmpfs(tmp_path / "ro", "size=8m") as folder:
        store = IndexStore(folder)
        add(store, range(2))
        store.close()
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        store = IndexStore(folder)
        with pytest.raises(IndexWriteError, match="read-only"):
            add(store, [3])
        assert document_ids(store.load(FINGERPRINT)) == ["doc0000.txt", "doc0001.txt"]
        store.close()


def test_large_segments_are_searched_through_an_hnsw_graph_with_high_recall(tmp_path, monkeypatch):
    import faiss

    from qa import segments

    monkeypatch.setattr(segments, "HNSW_MIN_ROWS", 1500)
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((3000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    documents = [make_document(f"d{i:04d}.txt", f"Row {i}.") for i in range(3000)]
    chunks = [Chunk(f"{d.id}#0", d.id, 0, len(d.text), d.text) for d in documents]
    store = IndexStore(tmp_path)
    store.commit(fingerprint(32), documents[:2000], chunks[:2000], vectors[:2000])
    index = store.commit(fingerprint(32), documents[2000:], chunks[2000:], vectors[2000:])
    graphs = [s for s in index.segments if s.graph is not None]
    assert [len(s.ids) for s in graphs] == [2000] and (tmp_path / "segments" / f"{graphs[0].name}.hnsw").exists()
    queries = vectors[rng.choice(3000, 100, replace=False)] + 0.3 * rng.standard_normal((100, 32)).astype(np.float32)
    _, exact = faiss.knn(queries, vectors, 10, metric=faiss.METRIC_INNER_PRODUCT)
    found = index.search_dense(queries, 10)
    recall = np.mean([len({index.chunks[n].document for n, _ in hits} & {documents[e].id for e in row}) / 10
                      for hits, row in zip(found, exact)])
    assert recall >= 0.95
    reopened = IndexStore(tmp_path).load(fingerprint(32))
    assert reopened.search_dense(queries[:5], 10) == found[:5]


def test_a_snapshot_taken_before_a_removal_still_searches_cleanly(tmp_path):
    store = IndexStore(tmp_path)
    before = add(store, range(4))
    store.commit(FINGERPRINT, [], [], None, remove=["doc0002.txt"])
    _, _, vectors = make_parts([2])
    hits = before.search_dense(vectors[:1], 8)[0]  # the old snapshot has no tombstones for doc0002
    assert len(hits) == 6 and all(before.chunks[n].document != "doc0002.txt" for n, _ in hits)


def test_terms_in_half_the_chunks_are_left_out_of_lexical_search_in_a_large_index(tmp_path):
    texts = [f"The report number {i} mentions {'zebras' if i == 777 else 'horses'}." for i in range(1200)]
    documents = [make_document(f"r{i:04d}.txt", t) for i, t in enumerate(texts)]
    chunks = [Chunk(f"{d.id}#0", d.id, 0, len(d.text), d.text) for d in documents]
    vectors = np.tile(np.eye(1, 4, dtype=np.float32), (1200, 1))
    index = IndexStore(tmp_path).commit(fingerprint(4), documents, chunks, vectors)
    assert index.search_bm25(["the report mentions horses"], 5) == [[]]  # every term is in most chunks
    hits = index.search_bm25(["the report that mentions zebras"], 5)[0]
    assert [index.chunks[n].document for n, _ in hits] == ["r0777.txt"]
