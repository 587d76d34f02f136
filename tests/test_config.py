"""One source of settings: components take Config's defaults, and a change to a running QA's config either takes
effect or is refused."""

import pytest

from qa.config import LIVE_SETTINGS, Config, default_embedder
from qa.embed import Embedder
from qa.read import Reader
from qa.runtime import resolve_runtime


def test_components_made_directly_get_the_products_defaults(tiny_reader):
    defaults = Config()
    reader = Reader(tiny_reader)
    assert reader.config == Config(reader=tiny_reader)
    assert reader.runtime == resolve_runtime(defaults.runtime) and reader.quantized == defaults.quantize
    assert reader.max_seq_length == defaults.max_seq_length
    embedder = Embedder()
    assert embedder.runtime == resolve_runtime(defaults.runtime) == "onnx" and embedder.precision == "int8"
    assert embedder.max_tokens == defaults.embed_max_tokens and embedder.path == default_embedder()
    assert Reader(tiny_reader, runtime="torch", quantize=False).runtime == "torch"  # unless asked otherwise


def test_live_settings_take_effect_and_the_others_are_refused(plumbing_bot):
    config = plumbing_bot.config
    assert plumbing_bot.retriever.config is config and plumbing_bot.reader.config is config
    question = "Who chaired the session?"
    assert len(plumbing_bot.ask(question).passages) == config.top_k == 4
    config.top_k = 2
    assert len(plumbing_bot.ask(question).passages) == 2
    passages = [c.text for _, c in zip(range(3), plumbing_bot.index.chunks)]
    spans = len(plumbing_bot.reader.run(question, passages).spans)
    config.n_best = 3
    assert len(plumbing_bot.reader.run(question, passages).spans) <= 3 < spans
    for name, value in [("reader", "another-reader"), ("runtime", "torch"), ("chunk_tokens", 99),
                        ("index_dir", "elsewhere")]:
        before = getattr(config, name)
        with pytest.raises(AttributeError, match=f"make a new QA with it instead: QA\\({name}="):
            setattr(config, name, value)
        assert getattr(config, name) == before
    assert "threshold" in LIVE_SETTINGS and "quantize" not in LIVE_SETTINGS


def test_a_config_no_component_was_made_from_can_change():
    config = Config()
    config.runtime = "torch"
    config.quantize = False
    assert config == Config(runtime="torch", quantize=False)
    assert Config.with_settings(config, {}) is config and Config.with_settings(config, {"top_k": 2}).top_k == 2
