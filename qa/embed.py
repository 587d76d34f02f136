"""Sentence-transformers embeddings: normalised, batched, with a cache for repeated questions."""

from __future__ import annotations

import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

import numpy as np


PRECISIONS = ("auto", "fp32", "bf16", "int8")


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bfloat16 natively (avx512_bf16 or AMX); elsewhere bf16 autocast is slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def resolve_precision(precision: str, device: str = "cpu") -> str:
    """"auto": bf16 on CPUs with native bf16 (half the fp32 time, the same retrieval recall in
    bench/results/index_speed.json), else fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"embedding precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "auto":
        return "bf16" if device == "cpu" and cpu_has_native_bf16() else "fp32"
    return precision


@lru_cache(maxsize=4)
def load_sentence_transformer(path: str, device: str = "cpu", int8: bool = False):
    """Load once per (path, device, int8); every Embedder over the same model shares it."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    model = SentenceTransformer(path, device=device, local_files_only=True)
    if int8 and device == "cpu":
        import torch

        from qa.read import quantize_int8

        for module in model:  # the transformer inside sentence-transformers' first module
            if hasattr(module, "model") and isinstance(module.model, torch.nn.Module):
                module.model = quantize_int8(module.model, keep_down_projections=False)
    return model


class Embedder:
    def __init__(self, path: str, device: str = "cpu", batch_size: int = 64, cache_size: int = 4096,
                 precision: str = "fp32"):
        precision = resolve_precision(precision, device)
        self.path = path
        self.precision = precision  # bf16 runs under autocast: faster on CPUs with native bf16 (avx512_bf16, AMX)
        self.model = load_sentence_transformer(path, device, precision == "int8")
        self.batch_size = batch_size
        self.dimension = int(self.model.get_embedding_dimension())
        self.tokenizer = self.model.tokenizer
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def name(self) -> str:
        """An identity for index fingerprints: the model folder's name and its config."""
        config = self.model[0].auto_model.config
        return f"{config.name_or_path.rstrip('/').split('/')[-1]}:{config.model_type}:{self.dimension}:{self.precision}"

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        import torch

        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            vectors = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                        convert_to_tensor=True, show_progress_bar=progress and len(texts) > 256)
        return np.ascontiguousarray(vectors.float().cpu().numpy(), dtype=np.float32)

    def embed_questions(self, questions: list[str]) -> np.ndarray:
        """Embeddings for questions, reusing earlier ones: chat users repeat and rephrase a lot."""
        with self._lock:
            missing = list(dict.fromkeys(q for q in questions if q not in self._cache))
        if missing:
            vectors = self.embed(missing)
            with self._lock:
                for question, vector in zip(missing, vectors):
                    self._cache[question] = vector
                    if len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
        with self._lock:
            rows = []
            for q in questions:
                vector = self._cache.get(q)
                if vector is None:  # evicted by a concurrent call in between: compute it again
                    vector = self.embed([q])[0]
                rows.append(vector)
        return np.stack(rows)
