"""ONNX Runtime for the encoders: same numbers as PyTorch, exported once, int8 where asked, clear errors."""

from pathlib import Path

import numpy as np
import pytest

from qa.embed import Embedder
from qa.read import Reader
from qa.runtime import resolve_runtime

PASSAGE = ("The treaty was signed in Dushanbe in 1992 by six states. Talks had begun in Moscow in 1989. The first "
           "summit after it was held in Minsk, and the largest delegation came from Kazakhstan.")


def test_runtime_names_are_checked():
    assert resolve_runtime("torch") == "torch"
    assert resolve_runtime("auto", device="cuda") == "torch"  # ONNX Runtime here runs on the CPU only
    assert resolve_runtime("auto") == "onnx"  # onnxruntime is a dependency of the project
    with pytest.raises(ValueError, match="runtime must be one of"):
        resolve_runtime("tensorrt")


def test_onnx_reader_matches_pytorch_and_is_exported_once(tiny_reader, monkeypatch, tmp_path):
    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path / "cache"))
    from qa.read import load_reader_model

    load_reader_model.cache_clear()
    exported = Reader(tiny_reader, runtime="onnx", quantize=False, max_seq_length=64, doc_stride=16)
    reference = Reader(tiny_reader, runtime="torch", quantize=False, max_seq_length=64, doc_stride=16)
    assert exported.runtime == "onnx" and reference.runtime == "torch"
    questions = [("Where was the treaty signed?", [PASSAGE]), ("When did talks begin?", [PASSAGE, PASSAGE[:60]])]
    for ours, theirs in zip(exported.run_many(questions), reference.run_many(questions)):
        assert [s.text for s in ours.spans[:5]] == [s.text for s in theirs.spans[:5]]
        assert ours.best.score == pytest.approx(theirs.best.score, abs=1e-3)
        assert ours.null_score == pytest.approx(theirs.null_score, abs=1e-3)
    models = list((tmp_path / "cache" / "onnx").glob("reader-*/model.onnx"))
    assert len(models) == 1
    stamp = models[0].stat().st_mtime_ns
    load_reader_model.cache_clear()
    Reader(tiny_reader, runtime="onnx", quantize=False, max_seq_length=64, doc_stride=16)  # a new process would do the same
    assert models[0].stat().st_mtime_ns == stamp  # loaded from the cache, not exported again


def test_export_runs_eager_attention_and_gives_the_model_back_as_it_was(tiny_reader, monkeypatch, tmp_path):
    import torch
    from transformers import AutoModelForQuestionAnswering

    from qa.runtime import PositionalInputs, export_encoder

    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path / "cache"))
    model = AutoModelForQuestionAnswering.from_pretrained(tiny_reader, attn_implementation="sdpa").eval()
    seen = []
    names = ["input_ids", "attention_mask", "token_type_ids"]

    def head(output, _):
        seen.append(model.config._attn_implementation)  # what the tracer runs
        return output.start_logits, output.end_logits

    encoder = export_encoder(PositionalInputs(model, names, head), tiny_reader, "reader", names,
                             ["start_logits", "end_logits"], False, "fp32", [])
    assert seen and set(seen) == {"eager"}
    assert model.config._attn_implementation == "sdpa" and model.bert.config._attn_implementation == "sdpa"
    ids = np.array([[101, 2054, 2003, 102, 1996, 3428, 102]])
    inputs = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    start, _ = encoder(**inputs)
    with torch.inference_mode():
        reference = model(**{k: torch.tensor(v) for k, v in inputs.items()}).start_logits.numpy()
    assert np.allclose(start, reference, atol=1e-4)


def test_int8_onnx_reader_keeps_down_projections_and_span_head_in_fp32(tiny_reader, monkeypatch, tmp_path):
    import onnx

    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path / "cache"))
    from qa.read import load_reader_model

    load_reader_model.cache_clear()
    reader = Reader(tiny_reader, runtime="onnx", quantize=True, max_seq_length=64, doc_stride=16)
    assert reader.run("Where was the treaty signed?", [PASSAGE]).spans  # it reads
    graph = onnx.load(str(reader.model.path)).graph
    plain = {n.name for n in graph.node if n.op_type == "MatMul"}
    quantised = [n.name for n in graph.node if n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul")]
    assert quantised, "nothing was quantised"
    assert any("qa_outputs" in name for name in plain)  # the span head
    assert all(any(f"layer.{i}/output/dense" in name for name in plain) for i in range(2))  # down-projections
    assert not any("intermediate" in name for name in plain)  # up-projections are int8


@pytest.mark.slow
def test_onnx_embedder_matches_sentence_transformers():
    texts = [PASSAGE, "Where was the treaty signed?", "A much longer text. " * 80, "x"]
    exported = Embedder(embed_precision="fp32", runtime="onnx")
    reference = Embedder(embed_precision="fp32", runtime="torch")
    ours, theirs = exported.embed(texts), reference.embed(texts)
    assert ours.shape == theirs.shape == (4, 384)
    assert np.allclose((ours * theirs).sum(1), 1.0, atol=1e-4)  # same vectors, in the order given
    assert exported.name() != reference.name()  # an index built by one is not silently searched with the other
    int8 = Embedder(embed_precision="int8", runtime="onnx").embed(texts)
    assert ((int8 * theirs).sum(1) > 0.97).all()


def test_failed_export_leaves_no_model_behind(monkeypatch, tmp_path):
    import torch

    from qa.runtime import export_encoder

    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path / "cache"))

    class Broken(torch.nn.Module):
        def forward(self, input_ids):
            raise RuntimeError("cannot trace this")

    with pytest.raises(RuntimeError, match="cannot trace"):
        export_encoder(Broken(), "broken-model", "reader", ["input_ids"], ["logits"], False, "fp32", [])
    assert not [p for p in Path(tmp_path / "cache").rglob("*.onnx")]
