"""The PostgreSQL store against a real server (pgserver: PostgreSQL 16 with pgvector): the same documents and
answers as the embedded index, several processes on one database, many clients at once, and a server that stops."""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import psycopg
import pytest

from qa import QA
from qa.config import PROJECT_ROOT
from qa.index import IndexMismatchError, IndexWriteError, StoreUnavailableError
from qa.load import make_document
from qa.postgres import redacted, term_counts, tsvector_literal
from tests.conftest import SEED_ID, start_postgres

pytestmark = pytest.mark.slow

PELICAN = ("The Okavango Pelican Survey was founded in 1987 by Nadia Ferreira, a boat mechanic from Maun. "
           "Its volunteers count the birds every March from small canoes.")


def pelican_bot(url, reader, **settings):
    return QA(store=url, corpus=[], reader=reader, quantize=False, **settings)


def test_the_embedded_and_the_postgresql_store_rank_alike(tmp_path, corpus, tiny_reader, postgres_url):
    embedded = QA.from_paths([corpus], index_dir=tmp_path / "index", reader=tiny_reader, quantize=False)
    shared = QA.from_paths([corpus], store=postgres_url, reader=tiny_reader, quantize=False)
    assert list(shared.index.documents) == list(embedded.index.documents) == [SEED_ID]
    assert len(shared.index.chunks) == len(embedded.index.chunks) > 1
    assert [c.text for c in shared.index.chunks] == [c.text for c in embedded.index.chunks]
    for question in ["Who chaired the session?", "When did Taliban fighters sweep into Kabul?", "CSTO"]:
        ours, theirs = (bot.retriever.run(bot.index, [question])[0] for bot in (shared, embedded))
        assert [(r.chunk.start, r.dense_rank, r.lexical_rank) for r in ours] == \
               [(r.chunk.start, r.dense_rank, r.lexical_rank) for r in theirs]
        assert [r.lexical_score for r in ours] == pytest.approx([r.lexical_score for r in theirs], rel=1e-6)
        assert [r.dense_score for r in ours] == pytest.approx([r.dense_score for r in theirs], abs=1e-5)
    shared.store.verify()


def test_add_remove_and_restore_change_the_tables_in_step(corpus, tiny_reader, postgres_url):
    bot = QA.from_paths([corpus], store=postgres_url, reader=tiny_reader, quantize=False)
    seed_chunks = len(bot.index.chunks)
    [added] = bot.add_documents([make_document("pelicans.txt", PELICAN)])
    assert bot.store.chunk_counts() == {SEED_ID: seed_chunks, "pelicans.txt": 1}
    hits = bot.retriever.run(bot.index, ["Who founded the Okavango Pelican Survey?"])[0]
    assert hits[0].chunk.document == added and hits[0].lexical_rank == 1 and hits[0].dense_rank == 1
    bot.store.verify()

    bot.remove(added)
    bot.remove(SEED_ID)
    assert len(bot.index.chunks) == 0 and not bot.index.documents and bot.removed() == [SEED_ID]
    with psycopg.connect(postgres_url) as connection:  # nothing of them is left, not even a term count
        assert connection.execute("select count(*) from qa_terms").fetchone()[0] == 0
    bot.store.verify()

    reopened = QA.from_paths([corpus], store=postgres_url, reader=tiny_reader, quantize=False)
    assert not reopened.index.documents  # a removed corpus file stays removed in the shared store
    reopened.restore(SEED_ID)
    assert list(reopened.index.documents) == [SEED_ID] and len(reopened.index.chunks) == seed_chunks


def test_two_processes_see_each_others_changes(tiny_reader, postgres_url, tmp_path):
    here = pelican_bot(postgres_url, tiny_reader)
    assert not here.index.documents
    (tmp_path / "pelicans.txt").write_text(PELICAN)
    child = subprocess.run(
        [sys.executable, "-m", "qa", "index", str(tmp_path / "pelicans.txt"), "--store", postgres_url,
         "--reader", tiny_reader], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300)
    assert child.returncode == 0, child.stderr
    # The process opened before the other one added the document sees it at its next question.
    assert "pelicans.txt" in here.index.documents
    hits = here.retriever.run(here.index, ["Who founded the Okavango Pelican Survey?"])[0]
    assert hits[0].chunk.document == "pelicans.txt"

    here.add_documents([make_document("tides.txt", "High tide at Maun harbour came at 6:40 on Tuesday.")])
    child = subprocess.run(
        [sys.executable, "-c", "import json, sys; from qa import QA; bot = QA(store=sys.argv[1], corpus=[], "
         "reader=sys.argv[2]); print(json.dumps(sorted(bot.index.documents)))", postgres_url, tiny_reader],
        capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300)
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout.strip().splitlines()[-1]) == ["pelicans.txt", "tides.txt"]


def test_twenty_clients_at_once(postgres_bot):
    """Twenty threads ask at once (as the web server's do) while a document is added; every answer is right."""
    bot = postgres_bot
    questions = {"Who chaired the session?": "Emomali Rahmon",
                 "Who attended the meeting as a guest?": "Shavkat Mirziyoyev",
                 "What does CSTO stand for?": "Collective Security Treaty Organization"}
    results, errors = [], []
    start = threading.Barrier(21)

    def client(n: int) -> None:
        start.wait()
        try:
            for question, expected in list(questions.items())[n % 3:] + list(questions.items())[: n % 3]:
                results.append((expected, bot.ask(question).text))
        except Exception as error:  # noqa: BLE001 - the test reports any failure
            errors.append(error)

    def writer() -> None:
        start.wait()
        try:
            bot.add_documents([make_document("pelicans.txt", PELICAN)])
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(20)] + [threading.Thread(target=writer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    try:
        assert not errors, errors
        assert len(results) == 60
        assert all(expected in text for expected, text in results), [r for r in results if r[0] not in r[1]]
        assert "Nadia Ferreira" in bot.ask("Who founded the Okavango Pelican Survey?").text
    finally:
        bot.remove("pelicans.txt")
    bot.store.verify()


@pytest.fixture()
def own_server(tmp_path_factory):
    """A server of this test's own, which the test stops and starts again."""
    server = start_postgres(tmp_path_factory.mktemp("own_postgres"))
    yield server
    server.cleanup()


def pg_ctl(server, *args: str) -> None:
    """pgserver's own pg_ctl, its output kept in a file (a pipe would be inherited by the server and never close)."""
    from pgserver._commands import POSTGRES_BIN_PATH

    with tempfile.TemporaryFile("w+") as output:
        done = subprocess.run([str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(server.pgdata), "-w", *args],
                              stdout=output, stderr=output, user=server.system_user, timeout=120)
        output.seek(0)
        assert done.returncode == 0, output.read() + server.log.read_text()[-2000:]


def stop(server) -> None:
    """An abrupt stop, as a crash or a lost machine would be: sessions are cut, nothing is flushed politely."""
    pg_ctl(server, "-m", "immediate", "stop")


def start(server) -> None:
    socket = server.get_uri().split("host=")[1]
    pg_ctl(server, "-o", '-h ""', "-o", f"-k {socket}", "-l", str(server.log), "start")


def test_the_server_stopped_during_an_add(own_server, tiny_reader):
    url = own_server.get_uri()
    bot = pelican_bot(url, tiny_reader)
    bot.add_documents([make_document("tides.txt", "High tide at Maun harbour came at 6:40 on Tuesday.")])
    errors: list[Exception] = []

    # Another session holds the chunks table, so the add stops inside its transaction, after it has written
    # the document row; the server is stopped there.
    blocker = psycopg.connect(url)
    blocker.execute("lock table qa_chunks in access exclusive mode")
    adding = threading.Thread(target=lambda: _add_catching(bot, errors))
    adding.start()
    for _ in range(600):
        waiting = blocker.execute("select count(*) from pg_locks where not granted").fetchone()[0]
        if waiting:
            break
        time.sleep(0.05)
    assert waiting, "the add never reached the chunks table"
    stop(own_server)
    adding.join(timeout=60)
    assert len(errors) == 1 and isinstance(errors[0], IndexWriteError), errors
    message = str(errors[0])
    assert "Nothing was changed" in message and "Traceback" not in message and "\n" not in message

    with pytest.raises(StoreUnavailableError, match="cannot reach the database"):
        bot.ask("When was high tide?")  # a clear message while it is down, not a hang

    start(own_server)  # back again: the same QA reconnects
    assert sorted(bot.index.documents) == ["tides.txt"]  # nothing of the interrupted add was kept
    bot.store.verify()
    assert "pelicans.txt" in bot.add_documents([make_document("pelicans.txt", PELICAN)])
    hits = bot.retriever.run(bot.index, ["Who founded the Okavango Pelican Survey?"])[0]
    assert hits[0].chunk.document == "pelicans.txt"


def _add_catching(bot, errors) -> None:
    try:
        bot.add_documents([make_document("pelicans.txt", PELICAN)])
    except Exception as error:  # noqa: BLE001 - the test checks which error it was
        errors.append(error)


def test_an_unreachable_database_is_one_clear_line(tmp_path, tiny_reader):
    url = f"postgresql://qa:secret@/qa?host={tmp_path}/nowhere"
    with pytest.raises(StoreUnavailableError, match="cannot reach the database") as caught:
        pelican_bot(url, tiny_reader)
    assert "secret" not in str(caught.value)
    cli = subprocess.run([sys.executable, "-m", "qa", "ask", "Who?", "--store", url, "--json"],
                         capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300,
                         env={**os.environ, "QA_READER": tiny_reader})
    assert cli.returncode == 2
    assert cli.stderr.strip().startswith("error: cannot reach the database") and "Traceback" not in cli.stderr
    assert json.loads(cli.stdout)["error"].startswith("cannot reach the database")
    web = subprocess.run([sys.executable, "app.py", "--store", url], capture_output=True, text=True,
                         cwd=PROJECT_ROOT, timeout=300, env={**os.environ, "QA_READER": tiny_reader})
    assert web.returncode == 2 and web.stderr.strip().startswith("error: cannot reach the database")


def test_another_embedder_does_not_wipe_a_shared_index(tiny_reader, postgres_url):
    pelican_bot(postgres_url, tiny_reader).add_documents([make_document("pelicans.txt", PELICAN)])
    with pytest.raises(IndexMismatchError, match="not rebuilt automatically"):
        pelican_bot(postgres_url, tiny_reader, chunk_tokens=100)
    assert list(pelican_bot(postgres_url, tiny_reader).index.documents) == ["pelicans.txt"]


def test_lexemes_are_written_as_given():
    counts = term_counts(["pelican", "__trace_children_yes", "pelican", "it's", "'"])
    assert counts == {"pelican": 2, "__trace_children_yes": 1, "its": 1}
    assert tsvector_literal(counts) == "'pelican' '__trace_children_yes' 'its'"
    assert redacted("postgresql://qa:hunter2@db/qa") == "postgresql://qa:***@db/qa"
