"""Follow-up questions asked in a conversation: each is rewritten against the previous turn (qa/rewrite.py), the
rewrites are asked in one batched call, and the answer most of them agree on wins (bench/results/converse.json:
weighting the earlier rewrites more lost more turns than it won).

Beyond the rewrite, the conversation narrows what counts as an answer: a span that only repeats what earlier
questions said is none (a follow-up asks for something new), and "Which of them ...?" after an answer listing
things takes one of those things. The question as asked, whose pronouns name nothing, is retrieved for together
with the previous turn. bench/converse.py measures each (bench/results/converse.json).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from qa.rewrite import FUNCTION_WORDS, candidates, is_bare_question, is_follow_up

UNRESOLVED = ("This looks like a follow-up question, but there is no earlier question to refer to; "
              "please ask it in full.")
NOT_RESOLVED = "Could not answer this as a follow-up to the previous question; please ask it in full."


def choose(answers: list) -> object:
    """The answer most rewrites agree on, weighted by the reader's confidence (an answer several readings of the
    follow-up reach is more likely than one a single odd rewrite reaches); the first when none is found."""
    from qa.evaluate import normalize_answer

    votes: dict[str, float] = {}
    for answer in answers:
        if answer.found:
            key = normalize_answer(answer.text)
            votes[key] = votes.get(key, 0.0) + answer.score
    if not votes:
        return answers[0]
    winner = max(votes, key=votes.get)
    return max((a for a in answers if a.found and normalize_answer(a.text) == winner), key=lambda a: a.score)


def _content_words(text: str) -> set[str]:
    from qa.evaluate import normalize_answer

    return {w for w in normalize_answer(text).split() if w not in FUNCTION_WORDS}


def already_said(history: list[tuple[str, str]]):
    """A test of (question, span) for spans that only repeat what earlier questions said: a follow-up asks for
    something new ("Against whom was it directed?" after "What did the Taliban embark on?" is not "the Taliban").
    Words the question being read says itself do not count (its scorer feature already weighs them)."""
    earlier = set().union(*(_content_words(q) for q, _ in history))

    def repeats(question: str, span: str) -> bool:
        new = _content_words(span) - _content_words(question)
        return bool(new) and new <= earlier

    return repeats


_PARTITIVE = re.compile(r"\b(?:of|among)\s+(?:them|these|those)\b", re.IGNORECASE)


def outside_list(question: str, previous_answer: str):
    """For "Which of them ...?" after an answer that lists things: a test of (question, span) for spans that name
    none of the listed things, or all of them (None when the question picks from no list)."""
    from qa.evaluate import normalize_answer

    items = [normalize_answer(item) for item in re.split(r",\s*|\s+(?:and|or)\s+", previous_answer)]
    items = [item for item in items if item]
    if not _PARTITIVE.search(question) or len(items) < 2:
        return None

    def unlisted(_: str, span: str) -> bool:
        named = sum(bool(re.search(rf"\b{re.escape(item)}\b", normalize_answer(span))) for item in items)
        return named in (0, len(items))

    return unlisted


def _checked_history(history) -> list[tuple[str, str]]:
    from qa.answer import QuestionError

    if not isinstance(history, (list, tuple)) or not all(
            isinstance(turn, (list, tuple)) and len(turn) == 2 and all(isinstance(part, str) for part in turn)
            for turn in history):
        raise QuestionError("The history must be a list of (question, answer) pairs of text.")
    return [(question, answer) for question, answer in history]


def ask_with_history(bot, question: str, history: list[tuple[str, str]]):
    """Answer `question` given the earlier turns [(question, answer text), ...], oldest first."""
    from qa.answer import Answer

    question, history = bot._check(question), _checked_history(history)
    if not is_follow_up(question):
        return bot.ask(question)
    if not history:
        # A bare "Why?" names nothing at all; "What does it return?" may still have one answer in the documents.
        answer = bot.ask(question) if not is_bare_question(question) else Answer(question, "", 0.0, False)
        if not answer.found:
            answer.message = UNRESOLVED
        return answer
    # The last turn that found an answer: after "Why?" found nothing, "And ForwardX11Trusted?" still leans on the
    # question before it.
    previous_question, previous_answer = next(((q, a) for q, a in reversed(history) if a.strip()), history[-1])
    # The question as asked is the fall-back when no rewrite finds an answer: a "follow-up" may be complete on
    # its own ("Which countries does it include?" when the documents name one list of countries), but read alone
    # a pronoun matches whatever the passages say ("Which country is he the president of?" -> any country).
    limit = bot.config.max_question_chars  # a rewrite may be longer than the question the user typed
    rewrites = [r for r in candidates(question, previous_question, previous_answer) if len(r) <= limit]
    if not rewrites:  # nothing in it refers back after all ("What does this manual describe?")
        return bot.ask(question)
    repeats, unlisted = already_said(history), outside_list(question, previous_answer)
    not_answer = repeats if unlisted is None else (lambda q, span: repeats(q, span) or unlisted(q, span))
    context = f" {previous_question} {previous_answer}"
    answers = bot.ask_many(rewrites + [question], not_answer=not_answer,
                           search=rewrites + [question + context])
    best = choose(answers[:-1]) if any(a.found for a in answers[:-1]) else answers[-1]
    if not best.found:
        best.message = NOT_RESOLVED
    return best


@dataclass
class Conversation:
    """Questions asked in turn, each follow-up read against the turns before it.

    >>> talk = bot.conversation()
    >>> talk.ask("Who chaired the session?").text        # 'President Emomali Rahmon of Tajikistan'
    >>> talk.ask("Which country is he the president of?").question   # as it was read, with 'he' resolved
    """

    bot: object
    turns: list[tuple[str, str]] = field(default_factory=list)  # (question as read, answer text)

    def ask(self, question: str):
        answer = ask_with_history(self.bot, question, self.turns)
        # A follow-up that found nothing is kept as asked: its rewrite may have been a wrong guess.
        self.turns.append((answer.question if answer.found else question, answer.text))
        return answer
