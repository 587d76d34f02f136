"""Training examples: answers and each kind of synthetic negative, on a tiny SQuAD file."""

import random

import pytest

from qa.squad import read_squad
from qa.training.config import TrainConfig
from qa.training.negatives import add_impossible_condition, build_examples, edit_question, negate_question, swap_name
from tests.squad_builders import CONTEXTS, QUESTIONS, write_squad


@pytest.fixture()
def squad_file(tmp_path):
    return write_squad(tmp_path / "tiny-squad.json")


def test_edited_questions_ask_about_something_the_paragraph_never_says():
    rng = random.Random(0)
    context = CONTEXTS[0][1]
    for question in ("When did talks begin in Moscow?", "Where was the first summit held?",
                     "Which city hosted the largest delegation from Kazakhstan?"):
        for _ in range(20):
            edited = edit_question(question, context, ["Oslo", "Lima"], rng)
            assert edited is not None and edited != question
            new_words = set(edited.split()) - set(question.split())
            assert len(new_words) == 1 and next(iter(new_words)).strip("?").lower() not in context.lower()
    assert edit_question("what is it?", context, ["Oslo"], rng) is None  # nothing safe to change


def test_negated_questions_stay_grammatical():
    assert negate_question("When did talks begin in Moscow?") == "When didn't talks begin in Moscow?"
    assert negate_question("Where was the first summit held?") == "Where wasn't the first summit held?"
    assert negate_question("Is Minsk the capital?") == "Isn't Minsk the capital?"
    assert negate_question("Who may have signed it?") == "Who may not have signed it?"
    assert negate_question("Which state did not sign?") is None  # negated already
    assert negate_question("Who signed the treaty?") is None  # no auxiliary to negate


def test_swapped_names_come_from_the_paragraph_but_not_from_the_answer_sentence():
    context = CONTEXTS[0][1]
    question = "When did talks begin in Moscow?"
    start = context.index("1989")
    swapped = {swap_name(question, context, start, start + 4, random.Random(seed)) for seed in range(30)}
    # Dushanbe, Minsk and Kazakhstan are in the paragraph; Moscow's own sentence is the answer's, so it never
    # comes back; "The" and "Talks" start sentences and are no names.
    assert swapped == {f"When did talks begin in {name}?" for name in ("Dushanbe", "Minsk", "Kazakhstan")}
    assert swap_name("When were talks held?", context, start, start + 4, random.Random(0)) is None  # no name


def test_impossible_conditions_name_a_year_the_paragraph_never_states():
    context = CONTEXTS[0][1]  # states 1992 and 1989
    years = set()
    for seed in range(40):
        conditioned = add_impossible_condition("Where was the treaty signed?", context, random.Random(seed))
        assert conditioned.startswith("Where was the treaty signed in ") and conditioned.endswith("?")
        year = int(conditioned[-5:-1])
        years.add(year)
        assert str(year) not in context and 1969 <= year <= 2012  # near a year it states, never one of them
    assert len(years) > 10
    assert 1800 <= int(add_impossible_condition("Who ratified it?", CONTEXTS[1][1].replace("1994", "then"),
                                                random.Random(0))[-5:-1]) < 2016  # no year stated: any year
    for question in ("What happened in 1992?",  # names a year
                     "What year did talks resume?", "Which state led during the war?",  # asks about time
                     "Which sea do the rivers feed?",  # a timeless fact: true in any year
                     "Name the city that was chosen"):  # not a question
        assert add_impossible_condition(question, context, random.Random(0)) is None


def test_examples_hold_answers_and_negatives(squad_file):
    squad = read_squad(squad_file)
    config = TrainConfig(other_paragraph_negatives=1.0, cut_sentence_negatives=1.0, edited_question_negatives=1.0,
                         negated_question_negatives=1.0, swapped_name_negatives=1.0,
                         impossible_condition_negatives=1.0)
    examples = build_examples(squad, config)
    positives = [e for e in examples if e[2] >= 0]
    negatives = [e for e in examples if e[2] < 0]
    assert len(positives) == len(QUESTIONS) and negatives
    for question, context, start, end in positives:
        assert (question, context[start:end]) in {(q, a) for _, q, a in QUESTIONS}
    answers = {q: a for _, q, a in QUESTIONS}
    originals = [c for _, c in CONTEXTS]
    for question, context, _, _ in negatives:
        if question in answers:  # another paragraph, or its own with the answer's sentence cut: no answer there
            assert answers[question].lower() not in context.lower()
        else:  # an edited, negated or name-swapped question, asked of an unchanged paragraph
            assert context in originals
    assert any(q not in answers for q, *_ in negatives) and any(c not in originals for _, c, *_ in negatives)
    assert build_examples(squad, config) == examples  # deterministic given the seed
    edited = {q for q, *_ in negatives if q not in answers}
    assert "When didn't talks begin in Moscow?" in edited  # negated
    assert any(q.startswith("When did talks begin in ") and "Moscow" not in q and q.split()[-1][:-1] in CONTEXTS[0][1]
               for q in edited)  # a name of the same paragraph swapped in
    assert any(q.startswith("Where was the treaty signed in ") for q in edited)  # an impossible condition
