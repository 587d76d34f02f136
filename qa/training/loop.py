"""The training loop: AdamW, transformers' padding collator, length grouping and linear schedule, resumable
checkpoints, and an optional time limit that the learning-rate schedule follows."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from qa.config import base_embedder
from qa.training.config import TrainConfig
from qa.training.features import Feature, cached_features

log = logging.getLogger("qa.training")


class Clock:
    """How far training is, in steps: steps done, or under a time limit the steps that the seconds trained
    stand for (seconds / time limit of all steps) where that is further along."""

    def __init__(self, total_steps: int, time_limit: float = 0.0, seconds_before: float = 0.0):
        self.total_steps = max(1, total_steps)
        self.time_limit = time_limit
        self.seconds_before = seconds_before  # trained before a resume
        self.started = time.monotonic()

    def seconds(self) -> float:
        return self.seconds_before + time.monotonic() - self.started

    def progress(self, step: int) -> float:
        """In [0, 1]; 1 means done."""
        done = step / self.total_steps
        if self.time_limit > 0:
            done = max(done, self.seconds() / self.time_limit)
        return min(1.0, done)

    def position(self, step: int) -> float:
        return self.progress(step) * self.total_steps


def linear_schedule(optimizer, warmup_ratio: float, clock: Clock):
    """transformers' linear warm-up and decay to zero, run on the clock's position rather than the step count,
    so that a run under a time limit ends with a fully decayed rate whichever runs out first."""
    from transformers import get_linear_schedule_with_warmup

    scheduler = get_linear_schedule_with_warmup(optimizer, round(warmup_ratio * clock.total_steps), clock.total_steps)
    by_step = scheduler.lr_lambdas[0]
    scheduler.lr_lambdas[0] = lambda step: by_step(clock.position(step))
    return scheduler


def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """One epoch's batches of similar length (transformers' length grouping: little padding, random order),
    the same for a given seed and epoch, so that a resumed run continues where it stopped."""
    from transformers.trainer_pt_utils import get_length_grouped_indices

    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    order = get_length_grouped_indices(lengths, batch_size, generator=generator)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _atomic_save_checkpoint(directory: Path, model, optimizer, scheduler, step: int, config: TrainConfig,
                            seconds: float = 0.0) -> None:
    temporary = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    model.save_pretrained(temporary)
    torch.save(
        {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "step": step,
            "seconds": seconds,
            "torch_rng": torch.get_rng_state(),
            "config": asdict(config),
        },
        temporary / "trainer_state.pt",
    )
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        directory.rename(old)
    temporary.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


def restore_checkpoint(directory: Path, optimizer, scheduler, clock: Clock) -> int:
    """The optimizer, schedule, random state and seconds trained of a checkpoint; returns its step."""
    state = torch.load(directory / "trainer_state.pt", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    clock.seconds_before = state.get("seconds", 0.0)
    log.info("resumed at step %d", state["step"])
    return state["step"]


@contextmanager
def _logging_to(path: Path):
    """The training log also written to `path` while the block runs; the handler goes away afterwards, so that
    one run's lines never reach another run's file."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        handler.close()


def _optimizer(model, config: TrainConfig):
    no_decay = ("bias", "LayerNorm.weight", "layernorm", "norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
         "weight_decay": config.weight_decay},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.learning_rate)


def train(config: TrainConfig, resume: bool = False) -> Path:
    """Train, checkpointing into output_dir (`resume` continues from its checkpoint); returns the final folder."""
    output = Path(config.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    with _logging_to(output / "train.log"):
        return _train(config, output, resume)


def _train(config: TrainConfig, output: Path, resume: bool) -> Path:
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    base = config.base_model or base_embedder()
    checkpoint = output / "checkpoint"
    tokenizer = AutoTokenizer.from_pretrained(base)
    features = cached_features(config, tokenizer, base)
    lengths = [len(f.input_ids) for f in features]
    log.info("features: %d, mean length %.1f", len(features), sum(lengths) / len(lengths))

    steps_per_epoch = math.ceil(len(features) / config.batch_size)
    total_steps = int(steps_per_epoch * config.epochs)
    resuming = resume and checkpoint.exists()
    # fp32 master weights whatever the stored dtype (a shipped fp16 reader can be trained further).
    model = AutoModelForQuestionAnswering.from_pretrained(checkpoint if resuming else base, dtype=torch.float32)
    model.to(config.device)
    optimizer = _optimizer(model, config)
    clock = Clock(total_steps, config.time_limit)
    scheduler = linear_schedule(optimizer, config.warmup_ratio, clock)
    step = restore_checkpoint(checkpoint, optimizer, scheduler, clock) if resuming else 0

    (output / "train_config.json").write_text(json.dumps(asdict(config), indent=2))
    step = _run_steps(model, optimizer, scheduler, clock, features, lengths, tokenizer, config, step, checkpoint)
    final = output / "final"
    model.save_pretrained(final)
    tokenizer.save_pretrained(final)
    log.info("saved %s", final)
    return final


def _run_steps(model, optimizer, scheduler, clock: Clock, features: list[Feature], lengths: list[int], tokenizer,
               config: TrainConfig, step: int, checkpoint: Path) -> int:
    """Steps from `step` until the schedule or the clock runs out; the last state is checkpointed."""
    from transformers import DataCollatorWithPadding

    collate = DataCollatorWithPadding(tokenizer, return_tensors="pt")
    steps_per_epoch = math.ceil(len(features) / config.batch_size)
    model.train()
    progress = tqdm(total=clock.total_steps, initial=step, desc="train", unit="step")
    running, seen, started = 0.0, 0, time.time()
    autocast = torch.autocast(device_type=config.device.split(":")[0], dtype=torch.bfloat16, enabled=config.bf16)
    saved_at = -1
    clock.started = time.monotonic()
    while clock.progress(step) < 1.0:
        epoch = step // steps_per_epoch
        for indices in epoch_batches(lengths, config.batch_size, config.seed, epoch)[step - epoch * steps_per_epoch :]:
            if clock.progress(step) >= 1.0:
                break
            batch = {k: v.to(config.device) for k, v in collate([features[i].as_inputs() for i in indices]).items()}
            with autocast:
                loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            running += loss.item()
            seen += 1
            progress.update(1)
            if step % config.log_every == 0:
                progress.set_postfix(loss=f"{running / seen:.3f}")
                log.info("step %d/%d loss %.4f lr %.2e elapsed %.0fs progress %.3f", step, clock.total_steps,
                         running / seen, scheduler.get_last_lr()[0], time.time() - started, clock.progress(step))
                running, seen = 0.0, 0
            if step % config.checkpoint_every == 0:
                _atomic_save_checkpoint(checkpoint, model, optimizer, scheduler, step, config, clock.seconds())
                saved_at = step
    progress.close()
    if saved_at != step:  # the last step's state, unless the loop has just saved it
        _atomic_save_checkpoint(checkpoint, model, optimizer, scheduler, step, config, clock.seconds())
    return step
