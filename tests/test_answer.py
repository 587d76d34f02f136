"""The public API, end to end: real embedder, real FAISS and BM25, real files."""

import json
import sqlite3
import threading

import pytest

from qa import QA, Answer, DocumentError, QuestionError
from qa.answer import looks_english
from tests.conftest import SEED_ID


# -- with the shipped reader: quality, in both stores ------------------------------------------------------------
@pytest.mark.slow
def test_who_chaired_the_session(answer_bot):
    answer = answer_bot.ask("Who chaired the session?")
    assert answer.found
    assert "Emomali Rahmon" in answer.text
    assert answer.document == SEED_ID
    document = answer_bot.index.documents[SEED_ID].text
    assert document[answer.start : answer.end] == answer.text
    assert answer.context[answer.start - answer.context_start : answer.end - answer.context_start] == answer.text
    assert answer_bot.config.threshold <= answer.score <= 1.0


@pytest.mark.slow
@pytest.mark.parametrize("question,expected", [
    ("When did Taliban fighters sweep into Kabul?", "August 15"),
    ("Who attended the meeting as a guest?", "Shavkat Mirziyoyev"),
    ("What does CSTO stand for?", "Collective Security Treaty Organization"),
])
def test_answers_questions_about_the_seed_article(answer_bot, question, expected):
    answer = answer_bot.ask(question)
    assert answer.found and expected in answer.text, answer


@pytest.mark.slow
@pytest.mark.parametrize("question", ["Who won the 2018 FIFA World Cup?", "What is the price of oil?"])
def test_abstains_when_the_article_cannot_answer(answer_bot, question):
    answer = answer_bot.ask(question)
    assert not answer.found and answer.text == ""
    assert answer.score < answer_bot.config.threshold
    assert answer.passages, "the closest passages are still offered"


@pytest.mark.slow
def test_ask_many_matches_ask(answer_bot):
    questions = ["Who chaired the session?", "Who won the 2018 FIFA World Cup?", "What does CSTO stand for?"]
    batched = answer_bot.ask_many(questions)
    single = [answer_bot.ask(q) for q in questions]
    # int8 dynamic quantisation scales activations per call, so the reader never mixes questions in one call:
    # each gets the answer it gets alone.
    for b, s in zip(batched, single):
        assert (b.found, b.document, b.text, b.start, b.end) == (s.found, s.document, s.text, s.start, s.end)
        assert b.score == pytest.approx(s.score, abs=1e-4)


@pytest.mark.slow
def test_non_english_question_gets_a_clear_message(answer_bot):
    for question in ["¿Quién presidió la sesión?", "Кто председательствовал на заседании?", "谁主持了会议？"]:
        answer = answer_bot.ask(question)
        assert not answer.found and "English" in answer.message
    assert looks_english("Who chaired the session?") and looks_english("CSTO members?")
    assert not looks_english("Qui a présidé la séance de travail?")


# -- bad questions --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("question,message", [("", "type a question"), ("   \n\t ", "type a question"),
                                              ("x" * 10_000, "10,000 characters")])
def test_bad_questions_are_refused_clearly(plumbing_bot, question, message):
    before = plumbing_bot.index
    with pytest.raises(QuestionError, match=message):
        plumbing_bot.ask(question)
    assert plumbing_bot.index is before


def test_control_characters_and_markup_in_questions_are_harmless(plumbing_bot):
    answer = plumbing_bot.ask("<script>alert(1)</script>\x00\x1b[31m Who chaired?")
    assert isinstance(answer, Answer)


# -- documents: add, remove, duplicates, bad files -------------------------------------------------------------------
def test_seed_is_indexed_and_saved(plumbing_bot, tmp_path):
    assert [d.id for d in plumbing_bot.documents()] == [SEED_ID]
    assert len(plumbing_bot.index.chunks) >= 3
    reopened = QA.from_paths([tmp_path / "corpus"], index_dir=tmp_path / "index", reader=plumbing_bot.config.reader,
                             quantize=False)
    assert reopened.index.chunks == plumbing_bot.index.chunks
    assert reopened.problems == []


def test_add_then_remove_a_document(plumbing_bot, tmp_path):
    extra = tmp_path / "extra.md"
    extra.write_text("# Zebras\n\nThe zebra Marty lives in the Central Park Zoo since 2005.", encoding="utf-8")
    assert plumbing_bot.add(extra) == ["extra.md"]
    assert "extra.md" in plumbing_bot.index.documents
    hits = plumbing_bot.retriever.run(plumbing_bot.index, ["Where does the zebra Marty live?"], 1)[0]
    assert hits[0].chunk.document == "extra.md"
    plumbing_bot.remove("extra.md")
    assert "extra.md" not in plumbing_bot.index.documents
    assert all(c.document != "extra.md" for c in plumbing_bot.index.chunks)
    with pytest.raises(KeyError, match="extra.md"):
        plumbing_bot.remove("extra.md")


def test_uploading_the_same_file_twice_changes_nothing(plumbing_bot):
    data = b"Kittens are young cats. They sleep a lot."
    assert plumbing_bot.add_bytes("cats.txt", data) == "cats.txt"
    generation = plumbing_bot.store.current()
    index = plumbing_bot.index
    with pytest.raises(DocumentError, match="already indexed"):
        plumbing_bot.add_bytes("cats.txt", data)
    with pytest.raises(DocumentError, match="same content as cats.txt"):
        plumbing_bot.add_bytes("copy-of-cats.txt", data)
    assert plumbing_bot.index is index and plumbing_bot.store.current() == generation


@pytest.mark.parametrize("name,data,message", [
    ("empty.txt", b"", "empty"), ("binary.txt", b"\x00\x01\x02" * 100, "binary"),
    ("latin.txt", "déjà vu".encode("latin-1"), "UTF-8"), ("tool.exe", b"MZ", "unsupported"),
    ("../../../etc/cron.d/evil.txt", b"", "empty"),
])
def test_bad_uploads_leave_index_and_documents_as_they_were(plumbing_bot, name, data, message):
    index, generation = plumbing_bot.index, plumbing_bot.store.current()
    with pytest.raises(DocumentError, match=message):
        plumbing_bot.add_bytes(name, data)
    assert plumbing_bot.index is index and plumbing_bot.store.current() == generation


def test_upload_over_the_size_limit_is_refused(plumbing_bot):
    limit = plumbing_bot.config.max_file_bytes
    with pytest.raises(DocumentError, match="limit"):
        plumbing_bot.add_bytes("big.txt", b"a" * (limit + 1))


def test_traversal_names_stay_inside_the_index(plumbing_bot, tmp_path):
    doc_id = plumbing_bot.add_bytes("../../outside.txt", b"Escaping is not allowed here.")
    assert doc_id == "outside.txt"
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path.parent / "outside.txt").exists()


@pytest.mark.slow
def test_asking_while_a_document_is_being_added(plumbing_bot):
    big = ("Paragraph about pelicans and their habits near the sea. " * 40 + "\n\n") * 30
    errors, answers = [], []

    def add():
        try:
            plumbing_bot.add_bytes("pelicans.txt", big.encode())
        except Exception as error:  # noqa: BLE001 - the test reports any failure
            errors.append(error)

    writer = threading.Thread(target=add)
    writer.start()
    while writer.is_alive() and len(answers) < 200:
        answers.append(plumbing_bot.ask("Who chaired the session?"))
    writer.join()
    assert not errors
    assert answers and all(isinstance(a, Answer) for a in answers)
    assert "pelicans.txt" in plumbing_bot.index.documents


def test_removed_seed_document_stays_removed_after_restart(plumbing_bot, tmp_path):
    plumbing_bot.remove(SEED_ID)
    reopened = QA.from_paths([tmp_path / "corpus"], index_dir=tmp_path / "index", reader=plumbing_bot.config.reader,
                             quantize=False)
    assert SEED_ID not in reopened.index.documents


def test_changed_and_deleted_corpus_files_are_picked_up_on_start(plumbing_bot, tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "new.txt").write_text("A new file about owls.")
    reopened = QA.from_paths([corpus], index_dir=tmp_path / "index", reader=plumbing_bot.config.reader, quantize=False)
    assert set(reopened.index.documents) == {SEED_ID, "new.txt"}
    (corpus / "new.txt").write_text("The owl file, rewritten.")
    (corpus / SEED_ID).unlink()
    again = QA.from_paths([corpus], index_dir=tmp_path / "index", reader=plumbing_bot.config.reader, quantize=False)
    assert set(again.index.documents) == {"new.txt"}
    assert "rewritten" in again.index.documents["new.txt"].text


def test_corrupted_index_is_reported_and_rebuilt_without_losing_uploads(plumbing_bot, tmp_path):
    plumbing_bot.add_bytes("upload.txt", b"Uploaded note: the meeting room is B12.")
    for segment in (tmp_path / "index" / "segments").glob("seg-*.npy"):
        segment.write_bytes(b"\x00" * 64)
    reopened = QA.from_paths([tmp_path / "corpus"], index_dir=tmp_path / "index", reader=plumbing_bot.config.reader,
                             quantize=False)
    assert any("damaged" in p for p in reopened.problems)
    assert set(reopened.index.documents) == {SEED_ID, "upload.txt"}
    assert len(reopened.index.chunks) == len(plumbing_bot.index.chunks)


def test_index_from_another_embedder_is_rebuilt(plumbing_bot, tmp_path):
    folder = tmp_path / "index"
    with sqlite3.connect(folder / "catalog.sqlite") as catalog:
        fingerprint = json.loads(catalog.execute("select value from meta where key = 'fingerprint'").fetchone()[0])
        fingerprint.update(embedder="some-other-model:bert:768", dimension=768)
        catalog.execute("update meta set value = ? where key = 'fingerprint'", (json.dumps(fingerprint),))
    reopened = QA.from_paths([tmp_path / "corpus"], index_dir=folder, reader=plumbing_bot.config.reader, quantize=False)
    assert any("some-other-model" in p for p in reopened.problems)
    assert set(reopened.index.documents) == {SEED_ID}
    assert reopened.index.fingerprint == plumbing_bot.fingerprint


@pytest.mark.slow
def test_thousands_of_tiny_files(tmp_path, tiny_reader):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(2000):
        (folder / f"note{i:04d}.txt").write_text(f"Note {i}: the code word is w{i * 7919 % 10007}.")
    bot = QA.from_paths([folder], index_dir=tmp_path / "index", reader=tiny_reader, quantize=False)
    assert len(bot.index.documents) == 2000
    hits = bot.retriever.run(bot.index, ["which note has code word w" + str(1234 * 7919 % 10007)], 3)[0]
    assert hits[0].chunk.document == "note1234.txt"


def test_unsettled_questions_read_the_rest_of_the_chunks(tmp_path, corpus, tiny_reader):
    """Top chunks first; the others only when the top ones give no confident answer (Config.read_first)."""
    from qa import QA

    questions = ["Who chaired the session?", "Which countries sent ministers?", "Who won the 2018 World Cup?"]
    kwargs = dict(index_dir=tmp_path / "index", reader=tiny_reader, quantize=False, top_k=4)
    all_at_once = QA.from_paths([corpus], read_first=0, **kwargs).ask_many(questions)
    never_settled = QA.from_paths([corpus], read_first=1, settle_confidence=1.01, **kwargs).ask_many(questions)
    always_settled = QA.from_paths([corpus], read_first=1, settle_confidence=0.0, **kwargs).ask_many(questions)
    for whole, cascade, first_only in zip(all_at_once, never_settled, always_settled):
        assert (cascade.text, cascade.start, cascade.document) == (whole.text, whole.start, whole.document)
        assert cascade.score == pytest.approx(whole.score, abs=1e-4)
        # Settled after one chunk: the answer can only come from the top chunk.
        top = first_only.passages[0]
        assert first_only.text == "" or top.start <= first_only.start < first_only.end <= top.end
