"""Keeping the index in step with the corpus: only changed files are read, changes cost what they change."""

import os
import shutil

import pytest

from qa import QA
from qa import library as library_module
from tests.conftest import SEED_DIR, SEED_ID


@pytest.fixture()
def notes(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    for i in range(12):
        (folder / f"note{i:02d}.txt").write_text(f"Note {i}: the locker code for room {i} is {1000 + 37 * i}. "
                                                 "It changes every spring.")
    return folder


def open_bot(folder, tmp_path, tiny_reader):
    return QA.from_paths([folder], index_dir=tmp_path / "index", reader=tiny_reader, quantize=False)


def test_an_unchanged_corpus_is_not_read_again(notes, tmp_path, tiny_reader):
    bot = open_bot(notes, tmp_path, tiny_reader)
    version = bot.store.current()
    # Same size and modification time, other text: a start that re-read files would pick this up.
    note = notes / "note03.txt"
    stat = note.stat()
    note.write_text(note.read_text().replace("spring", "summer"))
    os.utime(note, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = open_bot(notes, tmp_path, tiny_reader)
    assert again.store.current() == version
    assert "spring" in again.index.documents["note03.txt"].text


def test_a_touched_file_is_read_but_not_reindexed_and_an_edited_one_is(notes, tmp_path, tiny_reader):
    bot = open_bot(notes, tmp_path, tiny_reader)
    version = bot.store.current()
    os.utime(notes / "note01.txt")  # newer time, same text
    assert open_bot(notes, tmp_path, tiny_reader).store.current() == version
    (notes / "note02.txt").write_text("Note 2: the locker code for room 2 is 4242 since the move.")
    (notes / "note05.txt").unlink()
    bot = open_bot(notes, tmp_path, tiny_reader)
    assert bot.store.current() != version
    assert "4242" in bot.index.documents["note02.txt"].text and "note05.txt" not in bot.index.documents
    assert sum(c.document == "note02.txt" for c in bot.index.chunks) == 1
    hits = bot.retriever.run(bot.index, ["which room has locker code 4242"], 1)[0]
    assert hits[0].chunk.document == "note02.txt"


def test_adding_and_removing_write_one_segment_at_most(notes, tmp_path, tiny_reader):
    bot = open_bot(notes, tmp_path, tiny_reader)
    segments = tmp_path / "index" / "segments"
    before = {p.name: p.stat().st_mtime_ns for p in segments.iterdir()}
    bot.add_bytes("extra.txt", b"The spare key to the greenhouse hangs behind the clock.")
    after = {p.name: p.stat().st_mtime_ns for p in segments.iterdir()}
    assert {k: v for k, v in after.items() if k in before} == before and len(after) == len(before) + 2
    hits = bot.retriever.run(bot.index, ["where is the spare key to the greenhouse"], 1)[0]
    assert hits[0].chunk.document == "extra.txt"
    bot.remove("extra.txt")
    bot.store.wait_for_merge()  # the merge that drops a dead segment runs in the background
    removed = {p.name: p.stat().st_mtime_ns for p in segments.iterdir()}
    assert removed == before  # nothing rewritten; extra.txt's segment, now all tombstones, is dropped
    hits = bot.retriever.run(bot.index, ["where is the spare key to the greenhouse"], 4)[0]
    assert all(h.chunk.document != "extra.txt" for h in hits)


def test_a_large_corpus_is_committed_in_batches_and_merged(notes, tmp_path, tiny_reader, monkeypatch):
    monkeypatch.setattr(library_module, "BATCH_CHARS", 150)  # about two notes per commit
    bot = open_bot(notes, tmp_path, tiny_reader)
    assert len(bot.index.documents) == 12 and len(bot.index.chunks) == 12
    from qa.segments import MAX_SEGMENTS
    assert 1 < len(bot.index.segments) <= MAX_SEGMENTS
    hits = bot.retriever.run(bot.index, [f"locker code {1000 + 37 * 9}"], 1)[0]
    assert hits[0].chunk.document == "note09.txt"


def test_an_index_in_the_previous_format_is_upgraded_keeping_uploads(tmp_path, tiny_reader):
    import json

    from qa.load import make_document

    corpus = tmp_path / "corpus"
    shutil.copytree(SEED_DIR, corpus)
    old = tmp_path / "index" / "gen-000004"
    old.mkdir(parents=True)
    upload = make_document("upload.txt", "Uploaded note: the meeting room is B12.", source="upload")
    (old / "documents.jsonl").write_text(json.dumps(upload.__dict__) + "\n")
    (tmp_path / "index" / "CURRENT").write_text("gen-000004")
    bot = QA.from_paths([corpus], index_dir=tmp_path / "index", reader=tiny_reader, quantize=False)
    assert set(bot.index.documents) == {SEED_ID, "upload.txt"}
    assert not old.exists()


def test_a_moved_corpus_folder_is_not_embedded_again(notes, tmp_path, tiny_reader):
    bot = open_bot(notes, tmp_path, tiny_reader)
    version = bot.store.current()
    moved = tmp_path / "moved"
    shutil.copytree(notes, moved)  # new paths and times, same texts
    shutil.rmtree(notes)
    again = open_bot(moved, tmp_path, tiny_reader)
    assert again.store.current() == version and len(again.index.documents) == 12
    assert all(s[1].startswith("corpus:" + str(moved)) for s in again.store.document_states().values())
