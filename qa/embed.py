"""Sentence-transformers embeddings: normalised, batched, with a cache for repeated questions."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

import numpy as np

from qa.config import Config

PRECISIONS = ("auto", "fp32", "bf16", "int8")


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bfloat16 natively (avx512_bf16 or AMX); elsewhere bf16 autocast is slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def resolve_precision(precision: str, device: str = "cpu", runtime: str = "torch") -> str:
    """"auto": under ONNX Runtime int8; under PyTorch bf16 on CPUs with native bf16 (half the fp32 time, the
    same retrieval recall in bench/results/index_speed.json), else fp32. ONNX Runtime has no bf16 here: fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"embedding precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if runtime == "onnx":
        return "int8" if precision in ("auto", "int8") else "fp32"
    if precision == "auto":
        return "bf16" if device == "cpu" and cpu_has_native_bf16() else "fp32"
    return precision


@lru_cache(maxsize=4)
def load_sentence_transformer(path: str, device: str = "cpu", int8: bool = False, max_tokens: int = 0):
    """Load once per (path, device, int8, max_tokens); every Embedder with the same settings shares it."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    import torch

    # fp32 whatever the stored precision (the shipped embedder is stored in fp16 to halve its size).
    model = SentenceTransformer(path, device=device, local_files_only=True, model_kwargs={"dtype": torch.float32})
    if max_tokens:
        model.max_seq_length = min(max_tokens, model.max_seq_length)
    if int8 and device == "cpu":
        import torch

        from qa.read import quantize_int8

        for module in model:  # the transformer inside sentence-transformers' first module
            if hasattr(module, "model") and isinstance(module.model, torch.nn.Module):
                module.model = quantize_int8(module.model, keep_down_projections=False)
    return model


def _identity(model, path: str) -> str:
    """The model folder's name, its architecture and, for a local folder, a digest of its weights: an index built
    with other weights under the same folder name (a retrained embedder) is then rebuilt, not mixed."""
    config = model[0].auto_model.config
    identity = f"{config.name_or_path.rstrip('/').split('/')[-1]}:{config.model_type}"
    weights = sorted(Path(path).glob("*.safetensors")) + sorted(Path(path).glob("*.bin"))
    if weights:
        digest = hashlib.sha256()
        for file in weights:
            with open(file, "rb") as handle:
                while block := handle.read(1 << 20):
                    digest.update(block)
        identity += ":" + digest.hexdigest()[:12]
    return identity


def _mean_pool(output, inputs):
    """Mean of the token vectors under the attention mask, normalised: sentence-transformers' Pooling + Normalize."""
    import torch

    hidden = output.last_hidden_state
    mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(mean, dim=-1)


def _mean_pooled(model):
    """The model as one torch module from token ids to its normalised sentence vector, for an ONNX export; None
    unless it is the common layout (a transformer, mean pooling, optionally normalisation)."""
    from qa.runtime import PositionalInputs, encoder_inputs

    modules = list(model)
    names = [type(m).__name__ for m in modules]
    if names[:2] != ["Transformer", "Pooling"] or names[2:] not in ([], ["Normalize"]) or \
            getattr(modules[1], "pooling_mode", None) not in ("mean", ["mean"]):
        return None
    return PositionalInputs(modules[0].auto_model, encoder_inputs(model.tokenizer), _mean_pool)


@lru_cache(maxsize=4)
def load_onnx_embedder(path: str, int8: bool):
    """(encoder, tokenizer, meta) for the sentence-transformers model exported to ONNX (qa.runtime), or None where
    its layout does not export. With a warm cache neither sentence-transformers nor the PyTorch model loads."""
    from transformers import AutoTokenizer

    from qa.runtime import cached_encoder, export_encoder

    recipe = "int8 all layers" if int8 else "fp32"
    encoder = cached_encoder(path, "embedder", int8, recipe)
    if encoder is None:
        model = load_sentence_transformer(path, "cpu", False)
        pooled = _mean_pooled(model)
        if pooled is None:
            return None
        meta = {"dimension": int(model.get_embedding_dimension()), "max_seq_length": int(model.max_seq_length),
                "identity": _identity(model, path)}
        encoder = export_encoder(pooled, path, "embedder", pooled.input_names, ["sentence_embedding"], int8, recipe,
                                 [], meta=meta, tokenizer=model.tokenizer)
    meta = json.loads((encoder.path.parent / "meta.json").read_text())
    return encoder, AutoTokenizer.from_pretrained(encoder.path.parent), meta


class Embedder:
    """Sentence vectors. Its settings come from a Config (the product's defaults unless given, see qa.config):
    embedder, embed_precision, embed_max_tokens, runtime and device, all read when made.

    >>> Embedder.from_config(config)                               # as QA makes it
    >>> Embedder(runtime="torch", embed_precision="fp32")          # the defaults but for these settings
    """

    def __init__(self, path: str | None = None, config: Config | None = None, *, batch_size: int = 0,
                 cache_size: int = 4096, **settings):
        from qa.runtime import resolve_runtime

        if path is not None:
            settings["embedder"] = str(path)
        cfg = self.config = Config.with_settings(config, settings)
        self.path = path = cfg.embedder_path()
        device, precision, max_tokens = cfg.device, cfg.embed_precision, cfg.embed_max_tokens
        self.runtime = resolve_runtime(cfg.runtime, device)
        self.onnx = self.model = None
        exported = None
        if self.runtime == "onnx":
            self.precision = resolve_precision(precision, device, "onnx")
            exported = load_onnx_embedder(path, self.precision == "int8")
            if exported is None:  # a layout the export does not cover: PyTorch runs it
                self.runtime = "torch"
        if exported is not None:
            self.onnx, self.tokenizer, meta = exported
            self.dimension, self._identity = int(meta["dimension"]), meta["identity"]
            own_limit = int(meta["max_seq_length"])
            self.max_tokens = min(max_tokens, own_limit) if max_tokens else own_limit
        else:
            # bf16 runs under autocast: faster on CPUs with native bf16 (avx512_bf16, AMX)
            self.precision = resolve_precision(precision, device)
            self.model = load_sentence_transformer(path, device, self.precision == "int8", max_tokens)
            self.tokenizer = self.model.tokenizer
            self.dimension = int(self.model.get_embedding_dimension())
            self._identity = _identity(self.model, path)
            self.max_tokens = self.model.max_seq_length  # longer texts are embedded by their first max_tokens tokens
        # 0: 16 texts a batch under ONNX Runtime (faster than 64 on two cores), 64 under PyTorch.
        self.batch_size = batch_size or (16 if self.runtime == "onnx" else 64)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        cfg.in_use()

    @classmethod
    def from_config(cls, config: Config) -> "Embedder":
        return cls(config=config)

    def name(self) -> str:
        """An identity for index fingerprints: the model folder's name and its config."""
        name = f"{self._identity}:{self.dimension}:{self.precision}:{self.max_tokens}"
        return name + (":onnx" if self.runtime == "onnx" else "")

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self.onnx is not None:
            return self._embed_onnx(texts, progress)
        import torch

        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            vectors = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                        convert_to_tensor=True, show_progress_bar=progress and len(texts) > 256)
        return np.ascontiguousarray(vectors.float().cpu().numpy(), dtype=np.float32)

    def _embed_onnx(self, texts: list[str], progress: bool) -> np.ndarray:
        """Tokenised at once, then run in batches of similar length (little padding), longest first."""
        from tqdm.auto import tqdm

        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_tokens)
        names = self.onnx.input_names
        order = sorted(range(len(texts)), key=lambda i: -len(encoded["input_ids"][i]))
        pad = self.tokenizer.pad_token_id or 0
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        for batch in tqdm(batches, desc="embed", unit="batch", disable=not (progress and len(texts) > 256)):
            width = len(encoded["input_ids"][batch[0]])
            inputs = {name: np.full((len(batch), width), pad if name == "input_ids" else 0, dtype=np.int64)
                      for name in names}
            for row, i in enumerate(batch):
                n = len(encoded["input_ids"][i])
                for name in names:
                    inputs[name][row, :n] = encoded[name][i] if name in encoded else 0
            out[batch] = self.onnx(**inputs)[0]
        return out

    def embed_questions(self, questions: list[str]) -> np.ndarray:
        """Embeddings for questions, reusing earlier ones: chat users repeat and rephrase a lot."""
        with self._lock:
            missing = list(dict.fromkeys(q for q in questions if q not in self._cache))
        if missing:
            # One call per question: int8 activations are scaled per call (padding included), so a vector from a
            # batch differs from the same question's vector alone, and a cached one would make a question's answer
            # depend on the questions once asked beside it (a follow-up's rewrites, then the question on its own).
            vectors = [self.embed([question])[0] for question in missing]
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
