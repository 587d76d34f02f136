"""ONNX Runtime for the two encoders (reader and embedder): exported once from the PyTorch model, quantised,
cached on disk, then run without PyTorch in the loop.

Why: on a plain 2-core CPU ONNX Runtime's fused int8 kernels run a 256-token window of the reader and a batch
of the embedder markedly faster than PyTorch's dynamic int8 (bench/results/runtime.json). PyTorch stays the
reference: `runtime="torch"` in the configuration, and the fallback wherever onnxruntime is not installed or a
model does not export.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

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
    from torch import __version__ as torch_version

    parts = [kind, str(quantize), recipe, onnxruntime.__version__, torch_version, "v2"]
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
    import torch

    return [name for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and module.in_features > module.out_features]


class OnnxEncoder:
    """One exported encoder: takes numpy int64 inputs by name, returns its outputs as float32 arrays."""

    def __init__(self, path: Path, threads: int = 0):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or (os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        # The embedder's and the reader's sessions take turns on the same cores: threads left spinning after one
        # run steal them from the next (seed ask() p50 62-64 ms spinning, 49-53 ms without, same run).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = path
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, **inputs: np.ndarray) -> list[np.ndarray]:
        feed = {name: np.ascontiguousarray(inputs[name], dtype=np.int64) for name in self.input_names}
        return self.session.run(None, feed)


def cache_folder(source: str, kind: str, quantize: bool, recipe: str) -> Path:
    return cache_root() / "onnx" / f"{kind}-{_fingerprint(source, kind, quantize, recipe)}"


def cached_encoder(source: str, kind: str, quantize: bool, recipe: str, threads: int = 0) -> OnnxEncoder | None:
    """The encoder exported earlier from `source` with this recipe, or None."""
    folder = cache_folder(source, kind, quantize, recipe)
    target = folder / ("model.int8.onnx" if quantize else "model.onnx")
    return OnnxEncoder(target, threads) if target.is_file() else None


def export_encoder(module, source: str, kind: str, input_names: list[str], output_names: list[str],
                   quantize: bool, recipe: str, excluded: list[str], threads: int = 0, meta: dict | None = None,
                   tokenizer=None) -> OnnxEncoder:
    """The cached ONNX export of `module` (a torch.nn.Module taking `input_names` as int64 [batch, tokens]
    tensors), int8-quantised per channel when asked, all but the `excluded` linear layers (`recipe` names that
    choice in the cache key). `meta` (meta.json) and `tokenizer` are stored beside it, for loads that skip the
    PyTorch model. Written to a temporary file and renamed when whole, so an interrupted export is never
    loaded."""
    import torch

    folder = cache_folder(source, kind, quantize, recipe)
    target = folder / ("model.int8.onnx" if quantize else "model.onnx")
    if not target.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as scratch:
            plain = Path(scratch) / "model.onnx"
            example = tuple(torch.ones((1, 16), dtype=torch.long) for _ in input_names)
            axes = {name: {0: "batch", 1: "tokens"} for name in input_names}
            axes.update({name: {0: "batch"} for name in output_names})
            with warnings.catch_warnings(), torch.inference_mode():
                warnings.simplefilter("ignore")  # tracer notes about shapes: the axes above are declared dynamic
                torch.onnx.export(module.eval(), example, str(plain), input_names=input_names,
                                  output_names=output_names, dynamic_axes=axes, opset_version=17, dynamo=False)
            made = plain
            if quantize:
                from onnxruntime.quantization import QuantType, quantize_dynamic

                graph = _matmul_names(plain)
                skip = [node for node, scope in graph.items() if scope in set(excluded)]
                made = Path(scratch) / target.name
                logging.getLogger("root").setLevel(logging.ERROR)  # the quantiser's advice to pre-process
                quantize_dynamic(str(plain), str(made), weight_type=QuantType.QInt8, per_channel=True,
                                 nodes_to_exclude=skip)
            if tokenizer is not None:
                tokenizer.save_pretrained(folder)
            (folder / "meta.json").write_text(json.dumps(meta or {}, indent=1))
            os.replace(made, target)  # last: the model file's presence says the folder is whole
            (folder / "source.json").write_text(json.dumps({"source": source, "kind": kind, "quantize": quantize,
                                                            "excluded": excluded}, indent=1))
        log.info("exported %s to %s", source, target)
    return OnnxEncoder(target, threads)


def _matmul_names(path: Path) -> dict[str, str]:
    """MatMul node name -> the torch module it came from ("/bert/encoder/layer.0/output/dense/MatMul" ->
    "bert.encoder.layer.0.output.dense")."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return {node.name: node.name.strip("/").rsplit("/", 1)[0].replace("/", ".")
            for node in graph.node if node.op_type in ("MatMul", "Gemm")}
