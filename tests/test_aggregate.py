"""Choosing and scoring answers across passages: candidates, identifiers, the shipped answer scorer."""

import json

import numpy as np
import pytest

from qa.aggregate import FEATURES, SCORER_FILE, AnswerScorer, candidates, complete_identifier
from qa.config import SHIPPED_READER
from qa.read import Span


def _span(passage: str, word: str, passage_index: int = 0, margin: float = 1.0) -> Span:
    start = passage.index(word)
    return Span(passage_index, start, start + len(word), word, margin, 0.0, 0.5)


@pytest.mark.parametrize("passage,cut,whole", [
    ("Use the --trace-children=yes option.", "yes", "--trace-children=yes"),
    ("Compile with -g to include debugging information.", "g", "-g"),
    ("It is defined in X.680, the ASN.1 standard.", "680", "X.680"),
    ("The file qa/models/reader holds it.", "reader", "qa/models/reader"),
])
def test_a_span_that_cuts_an_identifier_grows_to_the_whole_of_it(passage, cut, whole):
    grown = complete_identifier(_span(passage, cut), passage)
    assert grown.text == whole and passage[grown.start : grown.end] == whole


@pytest.mark.parametrize("passage,word", [
    ("A London-based firm", "based"), ("Chopin's father", "Chopin"), ("It ended in 1806. Then", "1806"),
    ("It cost $5 million", "5 million"),
])
def test_ordinary_words_keep_the_readers_cut(passage, word):
    assert complete_identifier(_span(passage, word), passage).text == word


def test_candidates_group_the_same_answer_from_several_passages(shipped_bot):
    question = "Who chaired the session?"
    hits = shipped_bot.retriever.run(shipped_bot.index, [question], 4)[0]
    reading = shipped_bot.reader.run(question, [h.chunk.text for h in hits])
    found = candidates(question, reading, hits)
    assert found and all(set(c.features) == set(FEATURES) for c in found)
    keys = [" ".join(c.text.lower().split()) for c in found]
    assert len(keys) == len(set(keys)), "one candidate per answer text"
    for c in found:
        assert all(s.text.lower().strip() for s in c.spans)
        assert c.features["passages"] == len({s.passage for s in c.spans})
        assert 0 < c.features["share"] <= 1
    assert sum(c.features["share"] for c in found) == pytest.approx(1.0)


def test_the_shipped_scorer_loads_and_records_what_it_was_fitted_on():
    scorer = AnswerScorer.for_reader(str(SHIPPED_READER))
    assert scorer is not None, f"{SCORER_FILE} is shipped with the reader"
    assert set(scorer.features) <= set(FEATURES) and len(scorer.weights) == len(scorer.features)
    assert "train" in scorer.about["train_file"] and "dev" not in scorer.about["train_file"]
    assert scorer.about["held_out_questions"] > 0


def test_scorer_round_trips_and_rejects_unknown_features(tmp_path):
    scorer = AnswerScorer(("margin", "share"), (0.0, 0.5), (2.0, 0.25), (1.5, 2.0), -1.0, {"note": "test"})
    scorer.save(tmp_path / SCORER_FILE)
    again = AnswerScorer.load(tmp_path / SCORER_FILE)
    assert again == scorer
    data = json.loads((tmp_path / SCORER_FILE).read_text())
    data["features"][0] = "no such feature"
    (tmp_path / SCORER_FILE).write_text(json.dumps(data))
    with pytest.raises(ValueError, match="unknown features"):
        AnswerScorer.load(tmp_path / SCORER_FILE)


def test_answers_carry_a_confidence_band_and_alternatives(shipped_bot):
    answer = shipped_bot.ask("What does CSTO stand for?")
    assert answer.found and answer.confident == (answer.score >= shipped_bot.config.confident_threshold)
    document = shipped_bot.index.documents[answer.document].text
    for alternative in answer.alternatives:
        assert " ".join(document[alternative.start : alternative.end].split()) == alternative.text
        assert alternative.score <= answer.score
    declined = shipped_bot.ask("Who won the 2018 FIFA World Cup?")
    assert not declined.found and declined.alternatives, "a declined answer still shows its best guesses"
    assert declined.alternatives[0].score == pytest.approx(declined.score)


def test_without_the_scorer_the_readers_margin_decides(tmp_path, corpus):
    from qa import QA

    bot = QA.from_paths([corpus], index_dir=tmp_path / "index", use_scorer=False)
    assert bot.scorer is None
    answer = bot.ask("Who chaired the session?")
    hits = bot.retriever.run(bot.index, ["Who chaired the session?"])[0]
    reading = bot._read(["Who chaired the session?"], [hits])[0]
    assert answer.score == pytest.approx(reading.best.confidence, abs=1e-6)
    assert np.isclose(answer.score, max(s.confidence for s in reading.spans if s.margin == reading.best.margin))
