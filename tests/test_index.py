import contextlib
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
from qa.index import Fingerprint, Index, IndexCorruptError, IndexMismatchError, IndexStore, IndexWriteError
from qa.load import make_document
from tests.index_builders import assert_consistent, make_index

FINGERPRINT = Fingerprint("test-embedder", 8, {"max_tokens": 10})


def test_save_and_load_round_trip(tmp_path):
    store = IndexStore(tmp_path / "index")
    index = make_index(5)
    store.save(index)
    loaded = store.load(index.fingerprint)
    assert loaded.documents == index.documents
    assert loaded.chunks == index.chunks
    assert np.allclose(loaded.vectors, index.vectors)
    assert_consistent(loaded)
    query = index.vectors[4:5]
    assert loaded.search_dense(query, 1)[0][0][0] in (4, 5)  # doc0002's chunks


def test_only_the_live_and_one_previous_generation_are_kept(tmp_path):
    store = IndexStore(tmp_path)
    for n in range(1, 6):
        store.save(make_index(n))
    assert store.generations() == ["gen-000004", "gen-000005"]
    assert store.current() == "gen-000005"
    assert not list(tmp_path.glob(".staging-*"))


@pytest.mark.parametrize("damage", ["flip_vectors", "truncate_chunks", "garbage_manifest", "missing_generation",
                                    "empty_current"])
def test_damaged_index_is_reported_clearly(tmp_path, damage):
    store = IndexStore(tmp_path)
    store.save(make_index(3))
    live = tmp_path / store.current()
    if damage == "flip_vectors":
        data = bytearray((live / "vectors.faiss").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (live / "vectors.faiss").write_bytes(bytes(data))
    elif damage == "truncate_chunks":
        (live / "chunks.jsonl").write_bytes((live / "chunks.jsonl").read_bytes()[:20])
    elif damage == "garbage_manifest":
        (live / "manifest.json").write_bytes(b"\x00\xffnot json")
    elif damage == "missing_generation":
        (tmp_path / "CURRENT").write_text("gen-999999")
    else:
        (tmp_path / "CURRENT").write_text("")
    with pytest.raises(IndexCorruptError) as caught:
        store.load(FINGERPRINT)
    assert str(tmp_path) in str(caught.value)


def test_index_from_another_embedder_is_refused_with_both_names(tmp_path):
    store = IndexStore(tmp_path)
    store.save(make_index(2))
    other = Fingerprint("another-embedder", 8, {"max_tokens": 10})
    with pytest.raises(IndexMismatchError, match="test-embedder.*another-embedder"):
        store.load(other)


def test_documents_survive_a_damaged_chunk_file(tmp_path):
    store = IndexStore(tmp_path)
    store.save(make_index(4))
    live = tmp_path / store.current()
    (live / "vectors.faiss").write_bytes(b"junk")
    rescued = store.rescue_documents()
    assert sorted(d.id for d in rescued) == [f"doc{i:04d}.txt" for i in range(4)]


def test_adding_and_removing_documents_keeps_vectors_aligned():
    index = make_index(4)
    extra = make_index(6).documents["doc0005.txt"]
    grown = index.with_documents([extra], [Chunk("doc0005.txt#0", "doc0005.txt", 0, 10, extra.text[:10])],
                                 make_index(6).vectors[10:11])
    assert_consistent(grown)
    shrunk = grown.without_documents(["doc0001.txt"], exclude=True)
    assert_consistent(shrunk)
    assert "doc0001.txt" not in shrunk.documents and shrunk.excluded == ("doc0001.txt",)
    assert len(index.chunks) == 8  # the original snapshot is untouched


def test_bm25_finds_exact_numbers_and_names():
    documents = {f"d{i}": make_document(f"d{i}", t) for i, t in enumerate(
        ["The budget was 4,512 dollars in 1997.", "Nothing about money here.", "Zyxw met Abcd in Paris."])}
    chunks = [Chunk(f"{k}#0", k, 0, len(d.text), d.text) for k, d in documents.items()]
    index = Index(Fingerprint("x", 4, {}), documents, chunks, np.eye(3, 4, dtype=np.float32))
    assert index.search_bm25(["what happened in 1997"], 3)[0][0][0] == 0
    assert index.search_bm25(["who is Zyxw"], 3)[0][0][0] == 2
    assert index.search_bm25(["qqqq"], 3) == [[]]


_SAVER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from tests.index_builders import make_index
    from qa.index import IndexStore
    store = IndexStore({folder!r})
    indexes = [make_index(n, dimension=64, chunks_per_document=20) for n in range({start}, {start} + 6)]
    print("ready", flush=True)
    for index in indexes:
        store.save(index)
    print("done", flush=True)
    time.sleep(30)
""")


@pytest.mark.slow
def test_sigkill_during_save_never_leaves_a_broken_index(tmp_path):
    """Kill a process that is saving, at 50 different moments; the index must always load, whole."""
    folder = tmp_path / "index"
    IndexStore(folder).save(make_index(3, dimension=64, chunks_per_document=20))
    root = str(Path(__file__).resolve().parent.parent)
    rng = random.Random(7)
    generations_seen = set()
    for attempt in range(50):
        before = IndexStore(folder).load(Fingerprint("test-embedder", 64, {"max_tokens": 10}))
        start = len(before.documents) + 1 if len(before.documents) < 40 else 3  # changes, stays small
        script = _SAVER.format(root=root, folder=str(folder), start=start)
        child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.06))  # six saves take about that long
        child.send_signal(signal.SIGKILL)
        child.wait()
        store = IndexStore(folder)
        after = store.load(Fingerprint("test-embedder", 64, {"max_tokens": 10}))  # must not raise
        assert_consistent(after)
        if start > 3:
            assert set(before.documents) <= set(after.documents), "a document was lost"
        generations_seen.add(store.current())
    assert len(generations_seen) > 10, "the kills should land while saves are in progress"


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
    with mounted_tmpfs(tmp_path / "small", "size=256k") as folder:
        store = IndexStore(folder)
        store.save(make_index(2))
        with pytest.raises(IndexWriteError, match="disk is full.*previous index is unchanged"):
            store.save(make_index(400, dimension=64, chunks_per_document=8))
        assert len(store.load(FINGERPRINT).documents) == 2
        assert not list(folder.glob(".staging-*"))


def test_read_only_folder_gives_a_clear_error_and_keeps_the_old_index(tmp_path):
    with mounted_tmpfs(tmp_path / "ro", "size=8m") as folder:
        store = IndexStore(folder)
        store.save(make_index(2))
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        with pytest.raises(IndexWriteError, match="read-only"):
            store.save(make_index(3))
        assert len(store.load(FINGERPRINT).documents) == 2
