"""Examples tokenised into training windows (features), labelled with the answer's tokens or [CLS], and cached."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from qa.squad import read_squad
from qa.training.config import TrainConfig
from qa.training.negatives import build_examples

log = logging.getLogger("qa.training")


@dataclass
class Feature:
    input_ids: list[int]
    token_type_ids: list[int]
    start: int  # token positions of the answer; 0 and 0 ([CLS]) when the window holds none
    end: int

    def as_inputs(self) -> dict:
        """The feature as a transformers collator and AutoModelForQuestionAnswering take it."""
        return {"input_ids": self.input_ids, "token_type_ids": self.token_type_ids, "start_positions": self.start,
                "end_positions": self.end}


_worker_tokenizer = None


def _tokenize_in_worker(job: tuple) -> list[Feature]:
    examples, config = job
    return _tokenize_part(_worker_tokenizer, examples, config)


def _start_worker(tokenizer) -> None:
    global _worker_tokenizer
    _worker_tokenizer = tokenizer


def tokenize_examples(tokenizer, examples, config: TrainConfig) -> list[Feature]:
    """Features in the order of the examples, tokenised by `config.tokenize_workers` processes (0: this one)."""
    batch = 1000
    parts = [examples[offset : offset + batch] for offset in range(0, len(examples), batch)]
    progress = tqdm(total=len(parts), desc="tokenize", unit="k examples")
    features: list[Feature] = []
    if config.tokenize_workers > 1:
        import multiprocessing

        # The fast tokenizer's own threads barely scaled on a 16-core machine: separate processes do.
        with multiprocessing.get_context("fork").Pool(config.tokenize_workers, _start_worker, (tokenizer,)) as pool:
            for part_features in pool.imap(_tokenize_in_worker, [(part, config) for part in parts]):
                features.extend(part_features)
                progress.update()
    else:
        for part in parts:
            features.extend(_tokenize_part(tokenizer, part, config))
            progress.update()
    progress.close()
    return features


def _tokenize_part(tokenizer, part, config: TrainConfig) -> list[Feature]:
    features: list[Feature] = []
    encoded = tokenizer(
        [e[0] for e in part],
        [e[1] for e in part],
        truncation="only_second",
        max_length=config.max_seq_length,
        stride=config.doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=False,
    )
    for row, source in enumerate(encoded["overflow_to_sample_mapping"]):
        _, _, char_start, char_end = part[source]
        offsets = encoded["offset_mapping"][row]
        sequence_ids = encoded.sequence_ids(row)
        start_token = end_token = 0
        if char_start >= 0:
            context_tokens = [i for i, s in enumerate(sequence_ids) if s == 1]
            first, last = context_tokens[0], context_tokens[-1]
            if offsets[first][0] <= char_start and offsets[last][1] >= char_end:
                start_token = first
                while start_token <= last and offsets[start_token][1] <= char_start:
                    start_token += 1
                end_token = last
                while end_token >= first and offsets[end_token][0] >= char_end:
                    end_token -= 1
                if start_token > end_token:  # answer inside one sub-token: keep the token
                    start_token = end_token = min(start_token, last)
        features.append(
            Feature(
                input_ids=encoded["input_ids"][row],
                token_type_ids=encoded["token_type_ids"][row]
                if "token_type_ids" in encoded
                else [0] * len(encoded["input_ids"][row]),
                start=start_token,
                end=end_token,
            )
        )
    return features


# Settings that do not change which features are made (the loop's, the machine's).
_NOT_IN_FEATURES = {"output_dir", "batch_size", "learning_rate", "warmup_ratio", "weight_decay", "epochs", "bf16",
                    "device", "threads", "tokenize_workers", "checkpoint_every", "log_every", "time_limit"}


def _file_identity(path: str | Path) -> list:
    """A file or folder by resolved path, size and modification time: an edited or replaced file reads anew."""
    path = Path(path)
    if not path.exists():  # a hub id
        return [str(path)]
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [str(path.resolve())] + [(str(p.relative_to(path)) if path.is_dir() else "", p.stat().st_size,
                                     p.stat().st_mtime_ns) for p in files]


def feature_cache_path(config: TrainConfig, base: str) -> Path:
    """Where the features of this training file, tokenizer (the base model's) and example settings are kept."""
    key = {name: value for name, value in asdict(config).items() if name not in _NOT_IN_FEATURES}
    key["train_file"] = _file_identity(config.train_file)
    key["base_model"] = _file_identity(base)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(config.output_dir) / f"features-{digest}.pt"


def cached_features(config: TrainConfig, tokenizer, base: str) -> list[Feature]:
    """The training features, read from the cache in output_dir when made before with the same inputs."""
    cache = feature_cache_path(config, base)
    if cache.exists():
        return [Feature(*row) for row in torch.load(cache, weights_only=False)]
    examples = build_examples(read_squad(config.train_file), config)
    log.info("examples: %d (%d negatives)", len(examples), sum(1 for e in examples if e[2] < 0))
    features = tokenize_examples(tokenizer, examples, config)
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_name(cache.name + ".tmp")  # renamed when whole: an interrupted save is never read
    torch.save([(f.input_ids, f.token_type_ids, f.start, f.end) for f in features], partial)
    partial.replace(cache)
    return features
