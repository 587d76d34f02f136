"""Training examples from SQuAD questions: the answers, and synthetic questions or paragraphs with no answer."""

from __future__ import annotations

import random
import re

from qa.squad import SquadSet
from qa.training.config import TrainConfig

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    spans, begin = [], 0
    for match in _SENTENCE_END.finditer(text):
        spans.append((begin, match.start()))
        begin = match.end()
    spans.append((begin, len(text)))
    return spans


def _cut_answer_sentence(context: str, start: int, end: int) -> str | None:
    """The context with every sentence overlapping [start, end) removed; None if little would remain."""
    kept = [context[a:b] for a, b in _sentence_spans(context) if b <= start or a >= end]
    remaining = " ".join(kept)
    return remaining if len(remaining) >= 100 else None


_WORD = re.compile(r"[^\W\d_][\w'-]*|\d[\d,.]*")  # Unicode letters: "Beyoncé" is one word
_LETTERS = re.compile(r"[^\W\d_]+")
_ANTONYMS = dict(pair for a, b in (
    ("first", "last"), ("largest", "smallest"), ("most", "least"), ("before", "after"), ("earliest", "latest"),
    ("highest", "lowest"), ("increase", "decrease"), ("increased", "decreased"), ("north", "south"),
    ("east", "west"), ("northern", "southern"), ("eastern", "western"), ("won", "lost"), ("longest", "shortest"),
    ("oldest", "newest"), ("maximum", "minimum"), ("more", "fewer"), ("higher", "lower"), ("larger", "smaller"),
    ("older", "younger"), ("start", "end"), ("began", "ended"), ("inside", "outside"), ("above", "below"),
    ("early", "late"), ("best", "worst"), ("strongest", "weakest"), ("positive", "negative"),
    ("accepted", "rejected"), ("allowed", "banned"), ("private", "public"), ("male", "female"),
) for pair in ((a, b), (b, a)))


def _is_name(word: str, position: int) -> bool:
    return position > 0 and word[0].isupper() and word.lower() not in ("i", "what", "which", "who", "when")


def edit_question(question: str, context: str, foreign_names: list[str], rng: random.Random) -> str | None:
    """The question with one name, number or antonym-bearing word changed so that the context cannot answer it,
    or None when no safe edit exists. Safe means the new word never occurs in the context."""
    lowered = context.lower()
    words = list(_WORD.finditer(question))
    choices = []
    for position, match in enumerate(words):
        word = match.group()
        if word[0].isdigit() and word.lower() in lowered:
            digits = word.replace(",", "")
            if digits.isdigit() and 0 < int(digits) < 10_000:
                for _ in range(5):
                    new = str(int(digits) + rng.choice([-1, 1]) * rng.randint(1, 30))
                    if new not in lowered and int(new) > 0:
                        choices.append((match, new))
                        break
        elif _is_name(word, position) and word.lower() in lowered and foreign_names:
            new = rng.choice(foreign_names)
            if new.lower() not in lowered and new != word:
                choices.append((match, new))
        elif word.lower() in _ANTONYMS and _ANTONYMS[word.lower()] not in lowered:
            choices.append((match, _ANTONYMS[word.lower()]))
    if not choices:
        return None
    match, new = rng.choice(choices)
    return question[: match.start()] + new + question[match.end() :]


_NEGATED = {"is": "isn't", "was": "wasn't", "are": "aren't", "were": "weren't", "did": "didn't", "does": "doesn't",
            "do": "don't", "can": "can't", "could": "couldn't", "has": "hasn't", "have": "haven't", "had": "hadn't",
            "will": "won't", "would": "wouldn't", "should": "shouldn't", "may": "may not", "might": "might not",
            "must": "mustn't"}
_NEGATION = re.compile(r"\b(not|never|no|none|nor)\b|n't\b", re.IGNORECASE)


def negate_question(question: str) -> str | None:
    """The question with its first auxiliary verb negated by contraction (grammatical wherever the auxiliary
    stands), or None when it has none or is negated already."""
    if _NEGATION.search(question):
        return None
    for match in _WORD.finditer(question):
        word = match.group()
        if word.lower() in _NEGATED:
            new = _NEGATED[word.lower()]
            new = new[0].upper() + new[1:] if word[0].isupper() else new
            return question[: match.start()] + new + question[match.end() :]
    return None


def _standalone_names(text: str) -> list[re.Match]:
    """Capitalised words that do not start a sentence and stand apart from other capitalised words (so that
    swapping one never leaves half of a two-word name)."""
    words = list(_LETTERS.finditer(text))  # letters only: "Chopin's" yields "Chopin", and the "'s" stays
    names = []
    for i, match in enumerate(words):
        word = match.group()
        before = text[: match.start()].rstrip()
        if not word[0].isupper() or not before or before[-1] in ".!?\"" or len(word) < 3:
            continue
        if any(0 <= j < len(words) and words[j].group()[0].isupper() for j in (i - 1, i + 1)):
            continue
        names.append(match)
    return names


def swap_name(question: str, context: str, start: int, end: int, rng: random.Random) -> str | None:
    """The question with one name swapped for another name of the paragraph that neither the question nor the
    sentence holding the answer mentions, or None when there is no such pair."""
    answer_sentences = " ".join(context[a:b] for a, b in _sentence_spans(context) if a < end and b > start).lower()
    question_words = {w.lower() for w in _WORD.findall(question)}
    common = {w for w in _LETTERS.findall(context) if w.islower()}  # "She", "History": words, not names
    others = sorted({m.group() for m in _standalone_names(context) if m.group().lower() not in common
                     and m.group().lower() not in question_words and m.group().lower() not in answer_sentences})
    swappable = [m for m in _standalone_names(question) if m.group().lower() in context.lower()]
    if not others or not swappable:
        return None
    match = rng.choice(swappable)
    return question[: match.start()] + rng.choice(others) + question[match.end() :]


_YEAR = re.compile(r"\b(1[5-9]\d\d|20\d\d)\b")
# A question that already asks about time ("What year did ...", "during the 16th century") would read as nonsense.
_ABOUT_TIME = {"when", "year", "years", "century", "decade", "era", "age", "period", "date", "time", "during", "ago",
               "since", "until", "before", "after", "season"}
_PAST = {"did", "was", "were", "had"}


def add_impossible_condition(question: str, context: str, rng: random.Random) -> str | None:
    """A question about a past event limited to a year the paragraph never states, close to one it does when it
    has any (SQuAD 2.0's "impossible condition"); None for a question that names a year or asks about time
    already, is not about the past (a timeless fact holds in any year), or does not end in "?"."""
    words = [w.lower() for w in _WORD.findall(question)]
    past = any(w in _PAST or (w.endswith("ed") and len(w) > 4) for w in words[1:])
    if _YEAR.search(question) or _ABOUT_TIME & set(words) or not past or not question.rstrip().endswith("?"):
        return None
    stated = {int(year) for year in _YEAR.findall(context)}
    near = sorted({y + d for y in stated for d in range(-20, 21) if d and 1500 <= y + d <= 2016} - stated)
    year = rng.choice(near) if near else rng.randrange(1800, 2016)
    return question.rstrip()[:-1].rstrip() + f" in {year}?"


def build_examples(squad: SquadSet, config: TrainConfig) -> list[tuple[str, str, int, int]]:
    """(question, context, answer_start_char, answer_end_char) tuples; start -1 means no answer."""
    rng = random.Random(config.seed)
    questions = [q for q in squad.questions if q.answers and q.answer_starts[0] >= 0]
    if config.max_examples:
        questions = rng.sample(questions, min(config.max_examples, len(questions)))
    by_title: dict[str, list[int]] = {}
    for index, title in enumerate(squad.titles):
        by_title.setdefault(title, []).append(index)
    # Names from questions of other articles: swapped in, they ask about someone the paragraph never mentions.
    foreign_names = sorted({m.group() for q in squad.questions[:20_000]
                            for position, m in enumerate(_WORD.finditer(q.question)) if _is_name(m.group(), position)}
                           ) if config.edited_question_negatives else []
    examples = []
    for q in questions:
        context = squad.contexts[q.context_index]
        start = q.answer_starts[0]
        end = start + len(q.answers[0])
        examples.append((q.question, context, start, end))
        if rng.random() < config.other_paragraph_negatives:
            siblings = [i for i in by_title[squad.titles[q.context_index]] if i != q.context_index]
            if siblings:
                other = squad.contexts[rng.choice(siblings)]
                # An answer string that happens to appear in the other paragraph would be a false negative.
                if q.answers[0].lower() not in other.lower():
                    examples.append((q.question, other, -1, -1))
        if rng.random() < config.cut_sentence_negatives:
            cut = _cut_answer_sentence(context, start, end)
            if cut and q.answers[0].lower() not in cut.lower():
                examples.append((q.question, cut, -1, -1))
        if rng.random() < config.edited_question_negatives:
            edited = edit_question(q.question, context, foreign_names, rng)
            if edited:
                examples.append((edited, context, -1, -1))
        if rng.random() < config.negated_question_negatives:
            negated = negate_question(q.question)
            if negated:
                examples.append((negated, context, -1, -1))
        if rng.random() < config.swapped_name_negatives:
            swapped = swap_name(q.question, context, start, end, rng)
            if swapped:
                examples.append((swapped, context, -1, -1))
        if rng.random() < config.impossible_condition_negatives:
            conditioned = add_impossible_condition(q.question, context, rng)
            if conditioned:
                examples.append((conditioned, context, -1, -1))
    return examples
