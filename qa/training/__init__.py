"""Fine-tune an extractive span reader (AutoModelForQuestionAnswering) on SQuAD-format data.

negatives.py makes the examples (answers and synthetic "no answer" ones), features.py tokenises them into
windows, loop.py trains, export.py packs the result; `qa train` / `python -m qa.training` runs it (cli.py).

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

from qa.training.config import TrainConfig
from qa.training.export import export_reader
from qa.training.loop import train

__all__ = ["TrainConfig", "export_reader", "train"]
