import pytest

from qa.read import Calibration, Reader, Reading, Span


@pytest.fixture(scope="module")
def reader(tiny_reader):
    """The product's runtime and precision (qa.config.Config), short windows."""
    return Reader(tiny_reader, max_seq_length=64, doc_stride=16, max_answer_tokens=8, n_best=5)


def test_spans_are_exact_substrings_of_their_passage(reader):
    passages = ["The treaty was signed in Dushanbe in 1992 by six states.", "Another short passage about rivers."]
    reading = reader.run("Where was the treaty signed?", passages)
    assert reading.spans, "a random model still proposes spans"
    for span in reading.spans:
        assert passages[span.passage][span.start : span.end] == span.text
        assert 0.0 <= span.confidence <= 1.0
        assert span.text.strip()
    margins = [s.margin for s in reading.spans]
    assert margins == sorted(margins, reverse=True)


def test_long_passages_are_read_in_overlapping_windows(reader):
    words = [f"w{i}" for i in range(400)]
    passage = " ".join(words)
    ids, _ = reader.encode_passage(passage)
    question_ids = reader.tokenizer("which word?", add_special_tokens=False)["input_ids"]
    windows = list(reader._windows(question_ids, ids))
    assert len(windows) > 3
    covered = set()
    for input_ids, types, context_at, offset in windows:
        assert len(input_ids) <= 64 and len(types) == len(input_ids)
        piece = input_ids[context_at : len(input_ids) - 1]
        assert piece == ids[offset : offset + len(piece)]  # the passage tokens are spliced in unchanged
        covered.update(range(offset, offset + len(piece)))
    assert covered == set(range(len(ids)))
    reading = reader.run("which word?", [passage])
    assert all(passage[s.start : s.end] == s.text for s in reading.spans)


def test_windows_match_the_tokenizers_own_pair_encoding(reader):
    passage = "Short passage, fits in one window."
    ids, _ = reader.encode_passage(passage)
    question_ids = reader.tokenizer("a question?", add_special_tokens=False)["input_ids"]
    [(input_ids, types, _, _)] = list(reader._windows(question_ids, ids))
    reference = reader.tokenizer("a question?", passage)
    assert input_ids == reference["input_ids"]
    assert types == reference["token_type_ids"]


def test_many_questions_in_one_call_match_one_at_a_time(reader):
    items = [("Who signed it?", ["Six states signed the treaty in 1992."]),
             ("When?", ["It happened in 1992.", "Or maybe later, in 1994."])]
    together = reader.run_many(items)
    apart = [reader.run(q, p) for q, p in items]
    for a, b in zip(together, apart):
        assert [(s.passage, s.start, s.end) for s in a.spans] == [(s.passage, s.start, s.end) for s in b.spans]
        assert a.best.score == pytest.approx(b.best.score, abs=1e-4)


def test_a_reading_merged_with_one_of_further_passages_equals_reading_them_all(reader):
    question = "When was it signed?"
    passages = ["The treaty was signed in 1992.", "Talks began in 1989 in Moscow.", "It was ratified in 1993."]
    whole = reader.run(question, passages)
    merged = reader.run(question, passages[:1]).merged(reader.run(question, passages[1:]), 1, reader.config.n_best)
    assert [(s.passage, s.start, s.end) for s in merged.spans] == [(s.passage, s.start, s.end) for s in whole.spans]
    assert merged.null_score == pytest.approx(whole.null_score, abs=1e-4)
    assert all(passages[s.passage][s.start : s.end] == s.text for s in merged.spans)
    assert reader.run(question, passages).merged(reader.run(question, [""]), 3, reader.config.n_best).spans == whole.spans


def test_a_span_from_a_window_that_says_not_here_ranks_below_a_lower_scored_confident_one():
    # Passage 0's window scores its span higher but its [CLS] higher still; passage 1's span clears its own.
    doubtful = Reading([Span(0, 0, 4, "1992", 9.0, 10.0, 0.3)], 10.0)
    confident = Reading([Span(0, 5, 9, "1994", 7.0, 1.0, 0.9)], 1.0)
    merged = doubtful.merged(confident, 1, n_best=5)
    assert [s.text for s in merged.spans] == ["1994", "1992"]
    assert merged.best.passage == 1 and merged.best.margin == 6.0
    assert merged.null_score == 1.0


def test_empty_passages_give_no_spans(reader):
    assert reader.run("anything?", []).spans == []
    assert reader.run("anything?", [""]).spans == []


def test_calibration_is_monotone_and_bounded():
    calibration = Calibration(slope=0.8, intercept=-1.0)
    values = [calibration(m) for m in (-1000, -5, 0, 5, 1000)]
    assert values == sorted(values) and values[0] >= 0.0 and values[-1] <= 1.0
