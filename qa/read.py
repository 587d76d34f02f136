"""The span reader: any transformers AutoModelForQuestionAnswering, a local folder or a hub id.

Passages are tokenised once and cached; each question is spliced in front of windows of a passage, so a
chunk is never tokenised twice. All windows of all questions in a call go through the model in
length-sorted batches. A span's score is start logit + end logit; its window's [CLS] score (start + end
logit at position 0) is that window's no-answer score. Spans are ranked by their margin over their own
window's no-answer score, so a window that says "not here" holds its spans back (higher end-to-end F1 on SQuAD
dev than ranking by raw score: bench/ranking.py, bench/results/ranking.json).
Confidence is a logistic function of the margin, fitted on held-out data when the model folder carries a
calibration.json.
"""

from __future__ import annotations

import json
import math
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from qa.config import Config


@dataclass(frozen=True)
class Span:
    passage: int  # index into the passages given for this question
    start: int  # character offsets into that passage
    end: int
    text: str
    score: float  # start logit + end logit
    null_score: float  # [CLS] score of the window the span came from
    confidence: float  # calibrated probability that the span is a right answer

    @property
    def margin(self) -> float:
        return self.score - self.null_score


@dataclass(frozen=True)
class Reading:
    """The reader's verdict on one question: ranked spans (best first) and the no-answer evidence."""

    spans: list[Span]
    null_score: float  # lowest [CLS] score over all windows
    passages: int = 0  # passages read

    @property
    def best(self) -> Span | None:
        return self.spans[0] if self.spans else None

    def merged(self, later: "Reading", passage_offset: int, n_best: int) -> "Reading":
        """This reading and one of further passages (numbered from passage_offset) as if read in one call."""
        moved = [replace(span, passage=span.passage + passage_offset) for span in later.spans]
        spans = sorted(self.spans + moved, key=lambda span: -span.margin)[:n_best]
        nulls = [r.null_score for r in (self, later) if r.spans]  # a reading without spans read no window
        return Reading(spans, min(nulls) if nulls else self.null_score, self.passages + later.passages)


CALIBRATION_FILE = "calibration.json"


@dataclass(frozen=True)
class Calibration:
    """confidence = sigmoid(slope * margin + intercept); the defaults read a raw logit margin as odds."""

    slope: float = 1.0
    intercept: float = 0.0

    def __call__(self, margin: float) -> float:
        z = self.slope * margin + self.intercept
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    @classmethod
    def from_folder(cls, folder: str) -> "Calibration":
        path = Path(folder) / CALIBRATION_FILE
        if path.is_file():
            data = json.loads(path.read_text())
            return cls(slope=float(data["slope"]), intercept=float(data["intercept"]))
        return cls()


@lru_cache(maxsize=4)
def load_reader_model(path: str, device: str = "cpu", quantize: bool = False, runtime: str = "torch"):
    """Load once per (path, device, quantize, runtime). fp16-shipped weights are widened to fp32 for the CPU.
    With runtime "onnx" the model is an OnnxEncoder (qa.runtime): exported once, int8 when quantised."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # a per-tensor "Loading weights" bar is noise in a CLI
    tokenizer = AutoTokenizer.from_pretrained(path)
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{path}: the reader needs a fast tokenizer (for character offsets)")
    recipe = "int8 but down-projections" if quantize else "fp32"
    if runtime == "onnx":
        from qa.runtime import cached_encoder

        encoder = cached_encoder(path, "reader", quantize, recipe)
        if encoder is not None:
            return tokenizer, encoder
    model = AutoModelForQuestionAnswering.from_pretrained(path, dtype=torch.float32)
    model.eval().to(device)
    if runtime == "onnx":
        from qa.runtime import PositionalInputs, down_projections, encoder_inputs, export_encoder

        names = encoder_inputs(tokenizer)
        wrapped = PositionalInputs(model, names, lambda output, _: (output.start_logits, output.end_logits))
        return tokenizer, export_encoder(wrapped, path, "reader", names, ["start_logits", "end_logits"], quantize,
                                         recipe, down_projections(wrapped))
    if quantize and device == "cpu":
        model = quantize_int8(model)
    return tokenizer, model


def quantize_int8(model, keep_down_projections: bool = True):
    """Dynamic int8 for the linear layers, per output channel. By default it skips the span head and the
    feed-forward down-projections (in_features > out_features): their inputs carry the largest activation
    outliers, and on SQuAD v1.1 dev quantising them cost several times the F1 that this mix costs (measured when
    the mix was chosen; bench/results/reader.json has it against fp32). The embedder quantises every layer
    (keep_down_projections=False)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    spec = {name: per_channel_dynamic_qconfig for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear)
            and not (keep_down_projections and module.in_features > module.out_features)}
    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao; it still works
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, spec, dtype=torch.qint8)


class Reader:
    """Reads spans from passages. Its settings come from a Config (the product's defaults unless given, see
    qa.config): n_best, max_answer_tokens and reader_batch_size are read at each call, the rest when made.

    >>> Reader.from_config(config)                        # as QA makes it
    >>> Reader("my-reader", runtime="torch", quantize=False)  # the defaults but for these settings
    """

    def __init__(self, model: str | None = None, config: Config | None = None, *, max_question_tokens: int = 64,
                 cache_size: int = 50_000, **settings):
        from qa.runtime import resolve_runtime

        if model is not None:
            settings["reader"] = str(model)
        cfg = self.config = Config.with_settings(config, settings)
        self.model_name = cfg.reader
        self.device = cfg.device
        self.runtime = resolve_runtime(cfg.runtime, self.device)
        self.tokenizer, self.model = load_reader_model(self.model_name, self.device, cfg.quantize, self.runtime)
        self.quantized = cfg.quantize and self.device == "cpu"
        self.bf16 = cfg.reader_bf16 and not cfg.quantize  # bfloat16 autocast, the alternative to int8 on bf16 CPUs
        self.max_seq_length = cfg.max_seq_length
        self.calibration = Calibration.from_folder(self.model_name)
        self._passage_cache: OrderedDict[str, tuple[list[int], list[tuple[int, int]]]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()  # one forward pass at a time: two would only fight over the same cores
        self._template = self._pair_template()
        self._specials = len(self._template["prefix"]) + len(self._template["middle"]) + len(self._template["suffix"])
        room = self.max_seq_length - self._specials
        if room < 32:
            raise ValueError(f"max_seq_length {self.max_seq_length} leaves no room for question and passage")
        # A question may take at most half of a window; the passage always gets the rest.
        self.max_question_tokens = min(max_question_tokens, room // 2)
        budget = room - self.max_question_tokens
        self.doc_stride = min(cfg.doc_stride, budget // 2)
        cfg.in_use()

    @classmethod
    def from_config(cls, config: Config) -> "Reader":
        return cls(config=config)

    def _pair_template(self) -> dict:
        """How the tokenizer lays out (question, passage), learned from one probe pair, so that windows can be
        assembled from cached token ids: [CLS] q [SEP] p [SEP] for BERT, <s> q </s></s> p </s> for RoBERTa."""
        probe = self.tokenizer("q", "p", return_token_type_ids=True)
        ids, types, sequence = probe["input_ids"], probe["token_type_ids"], probe.sequence_ids()
        question_at = [i for i, s in enumerate(sequence) if s == 0]
        passage_at = [i for i, s in enumerate(sequence) if s == 1]
        return {
            "prefix": ids[: question_at[0]], "prefix_types": types[: question_at[0]],
            "middle": ids[question_at[-1] + 1 : passage_at[0]], "middle_types": types[question_at[-1] + 1 : passage_at[0]],
            "suffix": ids[passage_at[-1] + 1 :], "suffix_types": types[passage_at[-1] + 1 :],
            "question_type": types[question_at[0]], "passage_type": types[passage_at[0]],
        }

    def encode_passage(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        with self._lock:
            hit = self._passage_cache.get(text)
            if hit is not None:
                self._passage_cache.move_to_end(text)
                return hit
        return self._tokenise_and_remember([text])[0]

    def _tokenise_and_remember(self, texts: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
        """Tokenise passages in one batch and keep them in the LRU cache (oldest dropped past its size)."""
        encoded = self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        items = [(ids, [tuple(o) for o in offsets])
                 for ids, offsets in zip(encoded["input_ids"], encoded["offset_mapping"])]
        with self._lock:
            for text, item in zip(texts, items):
                self._passage_cache[text] = item
            while len(self._passage_cache) > self._cache_size:
                self._passage_cache.popitem(last=False)
        return items

    def warm(self, passages: list[str]) -> None:
        """Tokenise passages ahead of questions (batched, at index time), so asking never tokenises a chunk."""
        todo = [p for p in dict.fromkeys(passages) if p not in self._passage_cache][: self._cache_size]
        for offset in range(0, len(todo), 512):
            self._tokenise_and_remember(todo[offset : offset + 512])

    def _windows(self, question_ids: list[int], passage_ids: list[int]):
        """(input_ids, token_type_ids, position of the first passage token, passage token offset) per window."""
        t = self._template
        head = t["prefix"] + question_ids + t["middle"]
        head_types = t["prefix_types"] + [t["question_type"]] * len(question_ids) + t["middle_types"]
        budget = self.max_seq_length - len(question_ids) - self._specials
        step = max(1, budget - self.doc_stride)
        start = 0
        while True:
            piece = passage_ids[start : start + budget]
            yield (head + piece + t["suffix"], head_types + [t["passage_type"]] * len(piece) + t["suffix_types"],
                   len(head), start)
            if start + budget >= len(passage_ids):
                break
            start += step

    def run(self, question: str, passages: list[str]) -> Reading:
        return self.run_many([(question, passages)])[0]

    def run_many(self, items: list[tuple[str, list[str]]]) -> list[Reading]:
        windows = []  # (question index, passage index, ids, types, context position, passage token offset)
        encoded_passages: dict[tuple[int, int], tuple[list[int], list[tuple[int, int]]]] = {}
        for q, (question, passages) in enumerate(items):
            question_ids = self.tokenizer(question, add_special_tokens=False)["input_ids"][: self.max_question_tokens]
            for p, passage in enumerate(passages):
                encoded_passages[q, p] = self.encode_passage(passage)
                if not encoded_passages[q, p][0]:
                    continue
                for ids, types, context_at, token_offset in self._windows(question_ids, encoded_passages[q, p][0]):
                    windows.append((q, p, ids, types, context_at, token_offset))
        # Dynamic int8 scales activations per call, so a window's logits depend on the windows beside it: windows of
        # different questions never share a call, and a question gets the same answer alone or among others. On a
        # CPU bigger batches gain little (with ONNX Runtime nothing).
        groups = [w[0] for w in windows] if self.quantized else None
        logits = self._forward([w[2] for w in windows], [w[3] for w in windows], groups)
        n_best, max_answer_tokens = self.config.n_best, self.config.max_answer_tokens
        candidates: list[list[Span]] = [[] for _ in items]
        null_scores = [math.inf] * len(items)
        for (q, p, ids, _, context_at, token_offset), (start_logits, end_logits) in zip(windows, logits):
            passage_ids, offsets = encoded_passages[q, p]
            null = float(start_logits[0] + end_logits[0])
            null_scores[q] = min(null_scores[q], null)
            length = len(ids) - len(self._template["suffix"]) - context_at
            starts = start_logits[context_at : context_at + length]
            ends = end_logits[context_at : context_at + length]
            top_starts = np.argsort(-starts)[:n_best]
            top_ends = np.argsort(-ends)[:n_best]
            passage = items[q][1][p]
            for s in top_starts:
                for e in top_ends:
                    if e < s or e - s + 1 > max_answer_tokens:
                        continue
                    char_start = offsets[token_offset + s][0]
                    char_end = offsets[token_offset + e][1]
                    score = float(starts[s] + ends[e])
                    candidates[q].append(Span(p, char_start, char_end, passage[char_start:char_end], score, null,
                                              self.calibration(score - null)))
        readings = []
        for q, spans in enumerate(candidates):
            spans.sort(key=lambda span: -span.margin)
            unique, seen = [], set()
            for span in spans:  # overlapping windows propose the same span more than once
                key = (span.passage, span.start, span.end)
                if key not in seen:
                    seen.add(key)
                    unique.append(span)
                if len(unique) >= n_best:
                    break
            readings.append(Reading(unique, null_scores[q] if null_scores[q] != math.inf else 0.0, len(items[q][1])))
        return readings

    def _forward(self, all_ids: list[list[int]], all_types: list[list[int]],
                 groups: list[int] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Logits per window, in batches of similar length; with `groups`, a batch holds one group's windows."""
        results: list = [None] * len(all_ids)
        order = sorted(range(len(all_ids)), key=lambda i: (groups[i] if groups else 0, len(all_ids[i])))
        batches: list[list[int]] = []
        batch_size = self.config.reader_batch_size
        for i in order:
            if batches and len(batches[-1]) < batch_size and (groups is None or groups[batches[-1][0]] == groups[i]):
                batches[-1].append(i)
            else:
                batches.append([i])
        pad = self.tokenizer.pad_token_id or 0
        uses_types = "token_type_ids" in self.tokenizer.model_input_names
        autocast = torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16, enabled=self.bf16)
        with self._lock, torch.inference_mode(), autocast:
            for batch in batches:
                width = max(len(all_ids[i]) for i in batch)
                ids = torch.full((len(batch), width), pad, dtype=torch.long)
                types = torch.zeros((len(batch), width), dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    ids[row, : len(all_ids[i])] = torch.tensor(all_ids[i])
                    types[row, : len(all_types[i])] = torch.tensor(all_types[i])
                    mask[row, : len(all_ids[i])] = 1
                inputs = {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}
                if uses_types:
                    inputs["token_type_ids"] = types.to(self.device)
                if self.runtime == "onnx":
                    start, end = self.model(**{k: v.numpy() for k, v in inputs.items()})
                else:
                    output = self.model(**inputs)
                    start = output.start_logits.float().cpu().numpy()
                    end = output.end_logits.float().cpu().numpy()
                for row, i in enumerate(batch):
                    n = len(all_ids[i])
                    # Cut each row back to its own length so padding can never be picked as a span.
                    results[i] = (start[row, :n], end[row, :n])
        return results
