import numpy as np
import pytest

from qa.embed import Embedder, resolve_precision

TEXTS = ["The treaty was signed in Dushanbe in 1992.", "Rivers in Central Asia feed the Aral Sea.",
         "Who chaired the session?"]


@pytest.fixture(scope="module")
def fp32():
    return Embedder(runtime="torch", embed_precision="fp32")


@pytest.mark.slow
def test_vectors_are_normalised_and_questions_are_cached(fp32):
    vectors = fp32.embed(TEXTS)
    assert vectors.shape == (3, fp32.dimension) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    first = fp32.embed_questions(TEXTS[:2])
    assert np.allclose(first, vectors[:2], atol=1e-5)
    assert set(TEXTS[:2]) <= set(fp32._cache)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_faster_precisions_keep_the_ranking(fp32, precision):
    other = Embedder(runtime="torch", embed_precision=precision)
    assert f":{precision}:" in other.name() and other.name() != fp32.name()  # an index knows how it was built
    reference, vectors = fp32.embed(TEXTS), other.embed(TEXTS)
    assert np.all(np.sum(reference * vectors, axis=1) > 0.95)
    query = other.embed(["Where was the treaty signed?"])[0]
    assert int(np.argmax(vectors @ query)) == 0


def test_precision_is_checked_and_auto_resolves():
    with pytest.raises(ValueError, match="precision must be one of"):
        Embedder(embed_precision="fp8")
    assert resolve_precision("auto") in ("bf16", "fp32")
    assert resolve_precision("auto", device="cuda") == "fp32"
    assert resolve_precision("auto", runtime="onnx") == "int8"  # ONNX Runtime: int8 kernels, no bf16 here
    assert resolve_precision("bf16", runtime="onnx") == "fp32"


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_max_tokens_embeds_the_head_of_long_texts(fp32, runtime):
    short = Embedder(embed_precision="fp32", runtime=runtime, embed_max_tokens=16)
    long_text = "The treaty was signed in Dushanbe in 1992 by six states after talks that had begun in Moscow. " * 5
    head = fp32.tokenizer.decode(fp32.tokenizer(long_text, add_special_tokens=False)["input_ids"][:14])
    both = short.embed([long_text, head])
    assert float(both[0] @ both[1]) > 0.999  # only the first 16 tokens (with [CLS] and [SEP]) count
    assert float(both[0] @ fp32.embed([long_text])[0]) < 0.999  # the full text reads differently
    assert short.name() != fp32.name() and ":16" in short.name()


def test_the_shipped_embedder_loads_offline_in_fp32_and_is_told_from_its_base(fp32):
    import torch

    from qa.config import SHIPPED_EMBEDDER, base_embedder

    assert fp32.path == str(SHIPPED_EMBEDDER) and next(fp32.model.parameters()).dtype == torch.float32
    base = Embedder(base_embedder(), runtime="torch", embed_precision="fp32")
    assert fp32.name() != base.name()  # an index built with the base is rebuilt, not mixed
    question, passage, other = fp32.embed(["Where was the treaty signed?", TEXTS[0], TEXTS[1]])
    assert question @ passage > question @ other + 0.1
    assert not np.allclose(fp32.embed([TEXTS[0]]), base.embed([TEXTS[0]]), atol=1e-3)  # its own weights
