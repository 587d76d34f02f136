"""Embedder fine-tuning (qa.training.embedder) on the tiny SQuAD file, with the real base model."""

import random
import subprocess
import sys
import time

import numpy as np
import pytest
from transformers import AutoTokenizer

from qa.config import PROJECT_ROOT, base_embedder
from qa.embed import Embedder
from qa.calibrate import DERIVED_SEED
from qa.training.embedder import EmbedderTrainConfig, distinct_batches, training_rows
from tests.squad_builders import QUESTIONS, write_squad


@pytest.fixture()
def squad_file(tmp_path):
    return write_squad(tmp_path / "tiny-squad.json")


def test_each_question_gets_the_chunk_holding_its_answer_and_one_without_it(squad_file):
    rows = training_rows(EmbedderTrainConfig(train_file=str(squad_file), held_out_articles=0),
                         AutoTokenizer.from_pretrained(base_embedder()))
    answers = {question: answer for _, question, answer in QUESTIONS}
    assert len(rows) >= 4
    for question, positive, negative in rows:
        assert answers[question] in positive and answers[question] not in negative


def test_the_answer_scorers_articles_are_left_out(squad_file):
    tokenizer = AutoTokenizer.from_pretrained(base_embedder())
    held = random.Random(DERIVED_SEED).sample(["Rivers", "Treaty"], 1)[0]  # as qa.calibrate.derived_set picks
    rows = training_rows(EmbedderTrainConfig(train_file=str(squad_file), held_out_articles=1), tokenizer)
    about_held = {q for _, q, _ in QUESTIONS[4:]} if held == "Rivers" else {q for _, q, _ in QUESTIONS[:4]}
    assert not {q for q, _, _ in rows} & about_held
    everything = training_rows(EmbedderTrainConfig(train_file=str(squad_file), held_out_articles=0), tokenizer)
    assert {q for q, _, _ in everything} & about_held  # those questions make rows when their article is in
    assert training_rows(EmbedderTrainConfig(train_file=str(squad_file), held_out_articles=2), tokenizer) == []


def test_no_batch_holds_a_chunk_twice():
    rows = [(f"question {i}", f"chunk {i % 5}", f"other {i % 7}") for i in range(60)]
    batches = distinct_batches(rows, 4, seed=0)
    for batch in batches:
        texts = [text for row in batch for text in row[1:]]
        assert len(texts) == len(set(texts))
    placed = [row for batch in batches for row in batch]
    assert len(placed) == len(set(placed)) >= 40


@pytest.mark.slow
def test_training_is_interrupted_resumed_and_gives_a_model_the_product_loads(squad_file, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "qa.training.embedder", "--train-file", str(squad_file), "--output-dir",
               str(out), "--held-out-articles", "0", "--batch-size", "1", "--epochs", "2", "--bf16", "false",
               "--checkpoint-every", "1", "--learning-rate", "1e-4"]
    first = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while not (out / "checkpoint").exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    first.kill()  # interrupted after its first checkpoint
    first.wait()
    assert (out / "checkpoint").exists() and not (out / "final").exists()
    subprocess.run(command + ["--resume"], cwd=PROJECT_ROOT, check=True, capture_output=True, timeout=300)
    assert "resumed at step" in (out / "train.log").read_text()
    texts = ["Where was the treaty signed?", "The treaty was signed in Dushanbe in 1992 by six states."]
    tuned = Embedder(str(out / "final"), runtime="torch", embed_precision="fp32").embed(texts)
    base = Embedder(base_embedder(), runtime="torch", embed_precision="fp32").embed(texts)
    assert tuned.shape == (2, 384) and np.allclose(np.linalg.norm(tuned, axis=1), 1.0, atol=1e-3)
    assert not np.allclose(tuned, base, atol=1e-3)  # trained: the weights moved
