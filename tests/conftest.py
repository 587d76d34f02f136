"""Shared fixtures: the real embedder, the shipped reader, and a tiny random reader for plumbing tests."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# ONNX exports go to a folder of this test run (subprocesses inherit it), unless one is named already.
os.environ.setdefault("QA_CACHE_DIR", tempfile.mkdtemp(prefix="qa-test-cache-"))

from qa.config import PROJECT_ROOT, SHIPPED_READER, default_embedder

SEED_DIR = PROJECT_ROOT / "seeds"
SEED_ID = "000_969414e8ff3677b6.txt"


@pytest.fixture(scope="session")
def tiny_reader(tmp_path_factory) -> str:
    """A 2-layer randomly initialised BERT span reader with the real tokenizer: fast, for plumbing only."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering

    folder = tmp_path_factory.mktemp("tiny_reader")
    tokenizer = AutoTokenizer.from_pretrained(default_embedder())
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    BertForQuestionAnswering(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture()
def corpus(tmp_path) -> Path:
    """A private copy of the seed corpus that a test may change."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    shutil.copy(SEED_DIR / SEED_ID, folder / SEED_ID)
    return folder


@pytest.fixture()
def plumbing_bot(tmp_path, corpus, tiny_reader):
    """QA over a private corpus and index with the real embedder and the tiny reader."""
    from qa import QA

    return QA.from_paths([corpus], index_dir=tmp_path / "index", reader=tiny_reader, quantize=False)


@pytest.fixture(scope="session")
def shipped_bot(tmp_path_factory):
    """QA with every default (the shipped reader) over the seed article, in a private index folder."""
    from qa import QA

    assert (SHIPPED_READER / "config.json").is_file(), "the trained reader is not shipped in qa/models/reader"
    return QA(index_dir=str(tmp_path_factory.mktemp("seed_index")))


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    """A real PostgreSQL 16 with pgvector, started from the PyPI package pgserver; stopped after the session."""
    server = start_postgres(tmp_path_factory.mktemp("postgres"))
    yield server
    server.cleanup()


def start_postgres(folder: Path):
    """A pgserver PostgreSQL whose data lives in `folder`/data. Its import is kept quiet about XDG_RUNTIME_DIR
    being unset (it then uses /tmp, as it should); run as root, pgserver runs the server as its own user, so the
    folders down to the data must be readable by it."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    for part in [folder, *folder.parents]:
        if part == Path(tempfile.gettempdir()):
            break
        part.chmod(part.stat().st_mode | 0o755)
    return pgserver.get_server(folder / "data", cleanup_mode="stop")


def new_database(server) -> str:
    """The URL of a new, empty database on the server."""
    import uuid

    import psycopg

    name = "qa_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server.get_uri(), autocommit=True) as connection:
        connection.execute(f"create database {name}")
    return server.get_uri(name)


@pytest.fixture()
def postgres_url(postgres_server) -> str:
    return new_database(postgres_server)


@pytest.fixture(scope="session")
def postgres_bot(postgres_server):
    """The shipped-reader QA over the seed article, its index in PostgreSQL."""
    from qa import QA

    return QA(store=new_database(postgres_server))


@pytest.fixture(scope="session", params=["embedded", "postgresql"])
def answer_bot(request):
    """The shipped-reader QA over the seed article in each store: the answer tests pass on both."""
    return request.getfixturevalue("shipped_bot" if request.param == "embedded" else "postgres_bot")
