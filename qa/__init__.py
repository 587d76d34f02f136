"""Offline extractive question answering: exact quotes from your documents, or an honest "not found"."""

from qa.config import Config  # noqa: F401  (sets the offline environment before any model library loads)
from qa.answer import QA, Answer, QuestionError
from qa.chunk import Chunk
from qa.index import IndexCorruptError, IndexMismatchError, IndexWriteError
from qa.load import Document, DocumentError

__all__ = ["QA", "Answer", "Config", "Chunk", "Document", "DocumentError", "QuestionError", "IndexCorruptError",
           "IndexMismatchError", "IndexWriteError"]
__version__ = "0.1.0"
