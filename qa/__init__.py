"""Offline extractive question answering: exact quotes from your documents, or an honest "not found"."""

from __future__ import annotations

import importlib

from qa.config import Config  # noqa: F401  (sets the offline environment before any model library loads)

# Public names load on first use, so that `python -m qa.training` (say, on a GPU machine with only torch and
# transformers) does not import FAISS, BM25 or Gradio.
_EXPORTS = {
    "QA": "qa.answer", "Answer": "qa.answer", "QuestionError": "qa.answer", "Chunk": "qa.chunk",
    "IndexCorruptError": "qa.index", "IndexMismatchError": "qa.index", "IndexWriteError": "qa.index",
    "Document": "qa.load", "DocumentError": "qa.load",
}
__all__ = ["Config", *_EXPORTS]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'qa' has no attribute {name!r}")
