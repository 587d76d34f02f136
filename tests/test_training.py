"""Training plumbing with the tiny random reader: features and their cache, schedule, batches, resume, time limit."""

import json
import math
import random

import pytest
import torch

from qa.squad import read_squad
from qa.training import TrainConfig, train
from qa.training.features import cached_features, feature_cache_path, tokenize_examples
from qa.training.loop import Clock, epoch_batches, linear_schedule
from qa.training.negatives import build_examples
from tests.squad_builders import write_squad


@pytest.fixture()
def squad_file(tmp_path):
    return write_squad(tmp_path / "tiny-squad.json")


@pytest.mark.slow
def test_tokenising_in_worker_processes_gives_the_same_features(squad_file, tiny_reader):
    from transformers import AutoTokenizer

    config = TrainConfig(max_seq_length=48, doc_stride=16, other_paragraph_negatives=1.0, cut_sentence_negatives=1.0)
    examples = build_examples(read_squad(squad_file), config) * 300  # several parts of 1,000 examples
    tokenizer = AutoTokenizer.from_pretrained(tiny_reader)
    alone = tokenize_examples(tokenizer, examples, config)
    config.tokenize_workers = 2
    assert tokenize_examples(tokenizer, examples, config) == alone and len(alone) > len(examples)


def test_schedule_warms_up_decays_and_follows_the_clock():
    parameter = torch.nn.Parameter(torch.zeros(1))
    factor = linear_schedule(torch.optim.SGD([parameter], lr=1.0), 0.1, Clock(total_steps=100)).lr_lambdas[0]
    assert factor(5) == pytest.approx(0.5) and factor(10) == pytest.approx(1.0)
    assert factor(55) == pytest.approx(0.5) and factor(100) == 0.0
    timed = Clock(total_steps=100, time_limit=10.0, seconds_before=9.0)
    factor = linear_schedule(torch.optim.SGD([parameter], lr=1.0), 0.1, timed).lr_lambdas[0]
    assert timed.progress(0) >= 0.9 and factor(0) <= 0.12  # time, not steps, is further along


def test_length_grouped_batches_cover_every_feature_once_and_repeat_per_epoch():
    lengths = [random.Random(i).randint(10, 256) for i in range(1000)]
    batches = epoch_batches(lengths, 32, seed=42, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(1000)) and len(batches) == 32
    assert epoch_batches(lengths, 32, seed=42, epoch=0) == batches != epoch_batches(lengths, 32, seed=42, epoch=1)
    padding = sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)
    shuffled = list(range(1000))
    random.Random(0).shuffle(shuffled)
    unsorted = sum(max(lengths[i] for i in shuffled[o : o + 32]) * len(shuffled[o : o + 32])
                   - sum(lengths[i] for i in shuffled[o : o + 32]) for o in range(0, 1000, 32))
    assert padding < unsorted / 4  # grouped by length: little padding


@pytest.mark.slow
def test_train_resume_and_time_limit(squad_file, tiny_reader, tmp_path):
    config = TrainConfig(train_file=str(squad_file), base_model=tiny_reader, output_dir=str(tmp_path / "run"),
                         max_seq_length=64, doc_stride=16, batch_size=2, epochs=1.0, bf16=False, checkpoint_every=2,
                         log_every=1, other_paragraph_negatives=0.5, cut_sentence_negatives=0.5)
    final = train(config)
    assert (final / "config.json").is_file() and (final / "tokenizer.json").is_file()
    log = (tmp_path / "run" / "train.log").read_text()
    done = int(log.rsplit("step ", 1)[1].split("/")[0])
    state = torch.load(tmp_path / "run" / "checkpoint" / "trainer_state.pt", weights_only=False)
    assert state["step"] == int(log.rsplit("step ", 1)[1].split("/")[1].split()[0]) >= done
    # Resuming with a longer schedule continues from the checkpoint instead of starting again.
    config.epochs = 2.0
    train(config, resume=True)
    log = (tmp_path / "run" / "train.log").read_text()
    assert f"resumed at step {state['step']}" in log
    resumed = torch.load(tmp_path / "run" / "checkpoint" / "trainer_state.pt", weights_only=False)
    assert resumed["step"] > state["step"]
    # A time limit already spent stops training before any step.
    limited = TrainConfig(**{**config.__dict__, "output_dir": str(tmp_path / "limited"), "time_limit": 1e-9})
    train(limited)
    # Each run's log holds its own lines only (a run's log handler goes away with it).
    assert str(tmp_path / "limited") not in (tmp_path / "run" / "train.log").read_text()
    assert "resumed" not in (tmp_path / "limited" / "train.log").read_text()
    assert torch.load(tmp_path / "limited" / "checkpoint" / "trainer_state.pt", weights_only=False)["step"] == 0


def test_feature_cache_follows_the_training_file_and_the_base_model(squad_file, tiny_reader, tmp_path):
    """A changed --train-file or --base-model makes new features instead of reusing the cached token ids."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_reader)
    config = TrainConfig(train_file=str(squad_file), output_dir=str(tmp_path / "run"), max_seq_length=64, doc_stride=16)
    first = cached_features(config, tokenizer, tiny_reader)
    assert cached_features(config, tokenizer, tiny_reader) == first  # read back from the cache
    # Another training file, same settings: its own questions, not the first file's cached features.
    data = json.loads(squad_file.read_text())
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                qa["question"] = "Tell me: " + qa["question"].lower()
    other = tmp_path / "other-squad.json"
    other.write_text(json.dumps(data))
    config.train_file = str(other)
    changed = cached_features(config, tokenizer, tiny_reader)
    fresh = tokenize_examples(tokenizer, build_examples(read_squad(other), config), config)
    assert changed == fresh and changed != first
    # Another base model (a copy of the tokenizer in another folder) gets its own cache entry too.
    copy = tmp_path / "base-copy"
    tokenizer.save_pretrained(copy)
    assert feature_cache_path(config, str(copy)) != feature_cache_path(config, tiny_reader)
    assert len(list((tmp_path / "run").glob("features-*.pt"))) == 2


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_runs_on_a_gpu_in_bf16(squad_file, tiny_reader, tmp_path):
    from qa.read import Reader

    config = TrainConfig(train_file=str(squad_file), base_model=tiny_reader, output_dir=str(tmp_path / "gpu"),
                         max_seq_length=64, doc_stride=16, batch_size=4, epochs=2.0, device="cuda", bf16=True,
                         log_every=1, other_paragraph_negatives=0.5, cut_sentence_negatives=0.5)
    final = train(config)
    state = torch.load(tmp_path / "gpu" / "checkpoint" / "trainer_state.pt", weights_only=False)
    losses = [float(line.split(" loss ")[1].split()[0]) for line in (tmp_path / "gpu" / "train.log").read_text()
              .splitlines() if " loss " in line]
    assert state["step"] == len(losses) > 0 and all(math.isfinite(loss) for loss in losses)
    reading = Reader(final, runtime="torch", quantize=False).run("Where was the treaty signed?",
                                                                 ["The treaty was signed in Dushanbe in 1992."])
    assert reading.spans  # the weights trained on the GPU load and read on the CPU
