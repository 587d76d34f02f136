"""ONNX Runtime for the two encoders (reader and embedder): exported once from the PyTorch model, quantised,
cached on disk, then run without PyTorch in the loop.

Why, on this project's 2-core CPU: the index builds faster than with PyTorch in any precision
(bench/results/index_speed.json), a question embeds several times faster, the reader's int8 costs less F1 than
PyTorch's int8, and a reader window runs faster than PyTorch int8 or fp32 (bench/results/reader.json,
bench/results/quick_speed.json; exported with eager attention, see _eager_attention). PyTorch stays the
reference (`runtime="torch"`) and is what `runtime="auto"` picks where onnxruntime is not installed. An embedder
whose layout does not export runs in PyTorch (qa.embed); a reader has no such fall-back: a failed export is an
error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger("qa")

RUNTIMES = ("auto", "torch", "onnx")


@lru_cache(maxsize=1)
def onnx_available() -> bool:
    try:
        import onnx  # noqa: F401  (the quantiser needs it)
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_runtime(runtime: str, device: str = "cpu") -> str:
    """"auto": ONNX Runtime on a CPU where it is installed, else PyTorch."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    if runtime == "auto":
        return "onnx" if device == "cpu" and onnx_available() else "torch"
    if runtime == "onnx" and not onnx_available():
        raise ValueError("runtime 'onnx' needs the packages onnxruntime and onnx (pip install onnxruntime onnx)")
    return runtime


def cache_root() -> Path:
    """Where exported models live: QA_CACHE_DIR, else $XDG_CACHE_HOME/offline-qa, else ~/.cache/offline-qa."""
    if os.environ.get("QA_CACHE_DIR"):
        return Path(os.environ["QA_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "offline-qa"


def _fingerprint(source: str, kind: str, quantize: bool, recipe: str) -> str:
    """Changes whenever the weights, the export recipe or the runtime's version change. Cheap: no model is
    loaded, so that a start with a warm cache imports neither the PyTorch model nor sentence-transformers."""
    import onnxruntime

    parts = [kind, str(quantize), recipe, onnxruntime.__version__, torch.__version__, "v4"]
    folder = Path(source)
    if folder.is_dir():
        for path in sorted(folder.rglob("*")):  # what the graph is made of: the config and the weights
            if path.is_file() and (path.name == "config.json" or path.suffix in (".safetensors", ".bin")):
                stat = path.stat()
                parts.append(f"{path.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}")
    else:
        parts.append(source)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def down_projections(model) -> list[str]:
    """Names of the linear layers that shrink their input (feed-forward down-projections, span heads): the
    layers whose int8 costs the most accuracy (see qa.read.quantize_int8)."""
    return [name for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and module.in_features > module.out_features]


def encoder_inputs(tokenizer) -> list[str]:
    """The inputs an encoder takes, in the order an export passes them."""
    return [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tokenizer.model_input_names]


class PositionalInputs(torch.nn.Module):
    """`module` called with keyword inputs given by position, its output passed through `head(output, inputs)`:
    the shape torch.onnx.export needs (positional tensors in, tensors out)."""

    def __init__(self, module, input_names: list[str], head):
        super().__init__()
        self.module = module
        self.input_names = input_names
        self.head = head

    def forward(self, *inputs):
        named = dict(zip(self.input_names, inputs))
        return self.head(self.module(**named), named)


class OnnxEncoder:
    """One exported encoder: takes numpy int64 inputs by name, returns its outputs as float32 arrays."""

    def __init__(self, path: Path, threads: int = 0):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or torch.get_num_threads()  # Config.threads, as for PyTorch
        options.inter_op_num_threads = 1
        # The embedder's and the reader's sessions take turns on the same cores: threads left spinning after one
        # run steal them from the next (seed ask() measured slower with spinning on, in one run).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = path
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, **inputs: np.ndarray) -> list[np.ndarray]:
        feed = {name: np.ascontiguousarray(inputs[name], dtype=np.int64) for name in self.input_names}
        return self.session.run(None, feed)


def _model_file(source: str, kind: str, quantize: bool, recipe: str) -> Path:
    """Where the export of `source` with this recipe lives; its presence says the export is whole."""
    folder = cache_root() / "onnx" / f"{kind}-{_fingerprint(source, kind, quantize, recipe)}"
    return folder / ("model.int8.onnx" if quantize else "model.onnx")


def cached_encoder(source: str, kind: str, quantize: bool, recipe: str, threads: int = 0) -> OnnxEncoder | None:
    """The encoder exported earlier from `source` with this recipe, or None."""
    target = _model_file(source, kind, quantize, recipe)
    return OnnxEncoder(target, threads) if target.is_file() else None


def export_encoder(module, source: str, kind: str, input_names: list[str], output_names: list[str],
                   quantize: bool, recipe: str, excluded: list[str], threads: int = 0, meta: dict | None = None,
                   tokenizer=None) -> OnnxEncoder:
    """The cached ONNX export of `module` (a torch.nn.Module taking `input_names` as int64 [batch, tokens]
    tensors), int8-quantised per channel when asked, all but the `excluded` linear layers (`recipe` names that
    choice in the cache key). `meta` (meta.json) and `tokenizer` are stored beside it, for loads that skip the
    PyTorch model. Written to a temporary file and renamed when whole, so an interrupted export is never
    loaded."""
    target = _model_file(source, kind, quantize, recipe)
    folder = target.parent
    if not target.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as scratch:
            plain = Path(scratch) / "model.onnx"
            example = tuple(torch.ones((1, 16), dtype=torch.long) for _ in input_names)
            axes = {name: {0: "batch", 1: "tokens"} for name in input_names}
            axes.update({name: {0: "batch"} for name in output_names})
            with _eager_attention(module), warnings.catch_warnings(), torch.inference_mode():
                warnings.simplefilter("ignore")  # tracer notes about shapes: the axes above are declared dynamic
                torch.onnx.export(module.eval(), example, str(plain), input_names=input_names,
                                  output_names=output_names, dynamic_axes=axes, opset_version=17, dynamo=False)
            made = plain
            if quantize:
                from onnxruntime.quantization import QuantType, quantize_dynamic

                graph = _matmul_names(plain)
                skip = [node for node, scope in graph.items() if scope in set(excluded)]
                made = Path(scratch) / target.name
                root = logging.getLogger()
                level = root.level
                root.setLevel(logging.ERROR)  # the quantiser logs advice to pre-process on the root logger
                try:
                    quantize_dynamic(str(plain), str(made), weight_type=QuantType.QInt8, per_channel=True,
                                     nodes_to_exclude=skip)
                finally:
                    root.setLevel(level)
            if tokenizer is not None:
                tokenizer.save_pretrained(folder)
            (folder / "meta.json").write_text(json.dumps(meta or {}, indent=1))
            os.replace(made, target)  # last: the model file's presence says the folder is whole
            (folder / "source.json").write_text(json.dumps({"source": source, "kind": kind, "quantize": quantize,
                                                            "excluded": excluded}, indent=1))
        log.info("exported %s to %s", source, target)
    return OnnxEncoder(target, threads)


@contextmanager
def _eager_attention(module):
    """The transformers models inside `module` with eager attention for the export, restored afterwards (the
    model may be a cached one that PyTorch runs too). ONNX Runtime fuses the eager graph's attention and runs it
    faster than the SDPA graph (a 256-token int8 reader window, measured when this was adopted: see this file's
    history; outputs equal to 1e-5 in fp32)."""
    switched = []
    for part in module.modules():
        config = getattr(part, "config", None)
        before = getattr(config, "_attn_implementation", None)
        if hasattr(part, "set_attn_implementation") and before not in (None, "eager"):
            part.set_attn_implementation("eager")  # also switches the models inside it, which share its config
            switched.append((part, before))
    try:
        yield
    finally:
        for part, before in reversed(switched):
            part.set_attn_implementation(before)


def _matmul_names(path: Path) -> dict[str, str]:
    """MatMul node name -> the torch module it came from ("/bert/encoder/layer.0/output/dense/MatMul" ->
    "bert.encoder.layer.0.output.dense")."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return {node.name: node.name.strip("/").rsplit("/", 1)[0].replace("/", ".")
            for node in graph.node if node.op_type in ("MatMul", "Gemm")}
