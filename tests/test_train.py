"""Training plumbing on a tiny SQuAD file with the tiny random reader: labels, negatives, time limit, resume."""

import json
import random

import pytest

from qa.squad import read_squad
from qa.train import (Schedule, TrainConfig, add_impossible_condition, build_examples, cached_features,
                      edit_question, feature_cache_path, negate_question, swap_name, tokenize_examples, train)

CONTEXTS = [
    ("Treaty", "The treaty was signed in Dushanbe in 1992 by six states. Talks had begun in Moscow in 1989. "
               "The first summit after it was held in Minsk, and the largest delegation came from Kazakhstan."),
    ("Treaty", "Ratification took two years. The parliament of Armenia voted last, in 1994, after a long debate "
               "about the northern border and the cost of the joint force."),
    ("Rivers", "The Amu Darya and the Syr Darya feed the Aral Sea. Irrigation since 1960 has shrunk the sea to a "
               "tenth of its size, and the southern basin dried out first."),
]
QUESTIONS = [(0, "Where was the treaty signed?", "Dushanbe"), (0, "When did talks begin in Moscow?", "1989"),
             (0, "Where was the first summit held?", "Minsk"), (1, "Which parliament voted last?", "Armenia"),
             (2, "Which sea do the Amu Darya and Syr Darya feed?", "the Aral Sea"),
             (2, "Since when has irrigation shrunk the sea?", "1960")]


@pytest.fixture()
def squad_file(tmp_path):
    data = {"data": [{"title": title, "paragraphs": [{"context": context, "qas": [
        {"id": f"{c}-{n}", "question": q, "answers": [{"text": a, "answer_start": context.index(a)}]}
        for n, (ci, q, a) in enumerate(QUESTIONS) if ci == c]}]} for c, (title, context) in enumerate(CONTEXTS)]}
    path = tmp_path / "tiny-squad.json"
    path.write_text(json.dumps(data))
    return path


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


def test_tokenising_in_worker_processes_gives_the_same_features(squad_file, tiny_reader):
    from transformers import AutoTokenizer

    config = TrainConfig(max_length=48, stride=16, other_paragraph_negatives=1.0, cut_sentence_negatives=1.0)
    examples = build_examples(read_squad(squad_file), config) * 300  # several parts of 1,000 examples
    tokenizer = AutoTokenizer.from_pretrained(tiny_reader)
    alone = tokenize_examples(tokenizer, examples, config)
    config.tokenize_workers = 2
    assert tokenize_examples(tokenizer, examples, config) == alone and len(alone) > len(examples)


def test_schedule_warms_up_decays_and_follows_the_clock():
    schedule = Schedule(total_steps=100, warmup_ratio=0.1)
    assert schedule.factor(5) == pytest.approx(0.5) and schedule.factor(10) == pytest.approx(1.0)
    assert schedule.factor(55) == pytest.approx(0.5) and schedule.factor(100) == 0.0
    timed = Schedule(total_steps=100, warmup_ratio=0.1, time_limit=10.0, seconds_before=9.0)
    assert timed.progress(0) >= 0.9 and timed.factor(0) <= 0.12  # time, not steps, is further along


def test_train_resume_and_time_limit(squad_file, tiny_reader, tmp_path):
    config = TrainConfig(train_file=str(squad_file), base_model=tiny_reader, output_dir=str(tmp_path / "run"),
                         max_length=64, stride=16, batch_size=2, epochs=1.0, bf16=False, checkpoint_every=2,
                         log_every=1, other_paragraph_negatives=0.5, cut_sentence_negatives=0.5)
    final = train(config)
    assert (final / "config.json").is_file() and (final / "tokenizer.json").is_file()
    log = (tmp_path / "run" / "train.log").read_text()
    done = int(log.rsplit("step ", 1)[1].split("/")[0])
    import torch

    state = torch.load(tmp_path / "run" / "checkpoint" / "trainer_state.pt", weights_only=False)
    assert state["step"] == int(log.rsplit("step ", 1)[1].split("/")[1].split()[0]) >= done
    # Resuming with a longer schedule continues from the checkpoint instead of starting again.
    config.epochs = 2.0
    train(config, resume=True)
    log = (tmp_path / "run" / "train.log").read_text()
    assert f"resumed at step {state['step']}" in log
    resumed = torch.load(tmp_path / "run" / "checkpoint" / "trainer_state.pt", weights_only=False)
    assert resumed["step"] > state["step"]
    # A time limit already spent stops training before any step.
    limited = TrainConfig(**{**config.__dict__, "output_dir": str(tmp_path / "limited"), "time_limit": 1e-9})
    train(limited)
    assert torch.load(tmp_path / "limited" / "checkpoint" / "trainer_state.pt", weights_only=False)["step"] == 0


def test_feature_cache_follows_the_training_file_and_the_base_model(squad_file, tiny_reader, tmp_path):
    """A changed --train-file or --base-model makes new features instead of reusing the cached token ids."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_reader)
    config = TrainConfig(train_file=str(squad_file), output_dir=str(tmp_path / "run"), max_length=64, stride=16)
    first = cached_features(config, tokenizer, tiny_reader)
    assert cached_features(config, tokenizer, tiny_reader) == first  # read back from the cache
    # Another training file, same settings: its own questions, not the first file's cached features.
    data = json.loads(squad_file.read_text())
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                qa["question"] = "Tell me: " + qa["question"].lower()
    other = tmp_path / "other-squad.json"
    other.write_text(json.dumps(data))
    config.train_file = str(other)
    changed = cached_features(config, tokenizer, tiny_reader)
    fresh = tokenize_examples(tokenizer, build_examples(read_squad(other), config), config)
    assert changed == fresh and changed != first
    # Another base model (a copy of the tokenizer in another folder) gets its own cache entry too.
    copy = tmp_path / "base-copy"
    tokenizer.save_pretrained(copy)
    assert feature_cache_path(config, str(copy)) != feature_cache_path(config, tiny_reader)
    assert len(list((tmp_path / "run").glob("features-*.pt"))) == 2
