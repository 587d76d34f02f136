"""Follow-up questions: a question that leans on the previous turn ("Which country is he the president of?",
"And the kmem group?", "And if memory could not be allocated?", "Why?") is rewritten against the previous
question and answer before it is asked.

The rewrite is plain string work: a pronoun is replaced by the previous answer (unless that answer is a quantity
or a time) or by a noun phrase or code name of the previous question; an elliptic question ("And X?", "What about
X?") puts X in place of a phrase of the previous question, or of its clause when X is one ("if ...", "when ...");
a bare "Why?" or "When?" takes the rest of the previous question. Each rewrite is a candidate; all are asked in
one batched call and the reader's confidence picks one.

Beyond the rewrite, the conversation narrows what counts as an answer: a span that only repeats what earlier
questions said is none (a follow-up asks for something new), and "Which of them ...?" after an answer listing
things takes one of those things. The question as asked, whose pronouns name nothing, is retrieved for together
with the previous turn. bench/converse.py measures each (bench/results/converse.json).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from qa.aggregate import NUMERIC_QUESTION

_STOP = frozenset(
    "a an the of and or to in on at by for from with into about as is was are were be been being do does did has "
    "have had what who whom whose when where which why how can could will would should may might must this that "
    "these those it its they them their he him his she her there then also some any many much more most other "
    "such than not no only own same so too very just all each both few one ones anyone".split()
)
_WH = frozenset("what who whom whose when where which why how".split())
# Pronouns that stand for something said before; "him"/"he" for people, "it"/"they" for anything.
_PRONOUNS = {"he": "", "she": "", "him": "", "it": "", "they": "", "them": "", "this": "", "that": "",
             "these": "", "those": "", "his": "'s", "her": "'s", "its": "'s", "their": "'s"}
_ELLIPSIS = re.compile(r"^\s*(?:and|and what about|what about|how about|and for|and in|also)\s+(?P<rest>.+?)\s*\??\s*$",
                       re.IGNORECASE)
_WORD = re.compile(r"[\w'/\-.]+")
_INTRODUCERS = frozenset("the a an which what whose its his her their".split())  # a noun phrase follows
# Names in code or commands: "deflateEnd()", "Z_FINISH", "zpipe.c" (a subject after "does" has no article).
_IDENTIFIER = re.compile(r"(?<![\w.])(?:\w+\(\)|\w*_\w+|[a-z]+[A-Z]\w*|\w+\.[a-z]\w*)(?![\w(])")
# Clauses an elliptic follow-up swaps for the previous question's ("And if memory could not be allocated?").
_CLAUSE_WORDS = frozenset("if when whenever unless until while after before because since".split())

UNRESOLVED = ("This looks like a follow-up question, but there is no earlier question to refer to; "
              "please ask it in full.")
NOT_RESOLVED = "Could not answer this as a follow-up to the previous question; please ask it in full."


def _words(text: str) -> list[str]:
    return [w.strip(".") for w in _WORD.findall(text) if w.strip(".")]


def is_follow_up(question: str) -> bool:
    """Does the question refer back (a pronoun, "And X?", or a bare question word)?"""
    words = [w.lower() for w in _words(question)]
    if _ELLIPSIS.match(question) or (len(words) <= 2 and words and words[0] in _WH):
        return True
    # "that"/"this" directly after a noun is usually a relative or demonstrative inside a full question.
    return any(w in _PRONOUNS and not (w in ("that", "this") and i > 0 and words[i - 1] not in _WH and
                                       words[i - 1] not in _STOP) for i, w in enumerate(words))


def topic_phrases(question: str) -> list[str]:
    """Runs of content words of a question, noun-like runs first (after an article or "which"/"what", or
    capitalised), each with its article when it had one ("the operator user")."""
    words = _words(question)
    runs, start = [], None
    for i, word in enumerate(words + [""]):
        if word and word.lower() not in _STOP:
            start = i if start is None else start
        elif start is not None:
            runs.append((start, i))
            start = None
    ranked = []
    for i, j in runs:
        before = words[i - 1].lower() if i else ""
        noun_like = before in _INTRODUCERS or (i > 0 and words[i][0].isupper())
        if noun_like and j - i > 1 and words[j - 1].lower().endswith("ed"):  # "was its version 1.4 released"
            j -= 1
        phrase = " ".join(words[i:j])
        ranked.append((not noun_like, ("the " if before == "the" else "") + phrase))
    return [phrase for _, phrase in sorted(ranked, key=lambda pair: pair[0])]


def noun_phrases(question: str) -> list[str]:
    """The noun-like runs only (what a pronoun can stand for; "chaired" cannot)."""
    words = _words(question)
    out = []
    for phrase in topic_phrases(question):
        first = phrase.removeprefix("the ").split()[0]
        i = words.index(first)
        if i and (words[i - 1].lower() in _INTRODUCERS or first[0].isupper()):
            out.append(phrase)
    return out + [name for name in _IDENTIFIER.findall(question) if name not in out]


def _replace_pronoun(question: str, referent: str) -> list[str]:
    """The question with its first referring pronoun (or "that NOUN") replaced by the referent."""
    rewrites = []
    for match in re.finditer(r"\b(" + "|".join(_PRONOUNS) + r")\b(\s+\w+)?", question, re.IGNORECASE):
        pronoun = match.group(1).lower()
        suffix = _PRONOUNS[pronoun]
        start, end = match.start(1), match.end(1)
        rewrites.append(question[:start] + referent + suffix + question[end:])
        if pronoun in ("that", "this", "these", "those") and match.group(2):  # "that name" -> the referent
            rewrites.append(question[:start] + referent + question[match.end(2):])
    return rewrites


_ADVERBIAL = re.compile(r"(?i)\b(?:at|in|on|during|under|within|without|upon|after|before|once)\b")


def _put_clause_in_place(question: str, clause: str) -> list[str]:
    """"And if memory could not be allocated?" swaps the previous question's clause (if, when, ...); a question
    without one has its closing adverbial swapped instead ("... set to at the end of the file?" -> "... set to
    when the end has not been reached?"), or the clause added at its end."""
    clause = clause.rstrip("?")
    body = question.rstrip().rstrip("?")
    words = r"\b(?:" + "|".join(_CLAUSE_WORDS) + r")\b"
    own = re.search(r"(?i)" + words + r".*", body)
    if own:
        return [body[:own.start()] + clause + "?"]
    cuts = [m.start() for m in _ADVERBIAL.finditer(body) if len(body[:m.start()].split()) >= 3]
    return [body[:cut] + clause + "?" for cut in reversed(cuts)] + [f"{body} {clause}?"]


def _put_in_place(question: str, phrase: str) -> list[str]:
    """"And the kmem group?" after "Which files can the shadow group read?" -> "Which files can the kmem group
    read?". When the new phrase ends in a word of the question ("group"), it takes the place of the content words
    up to that word; otherwise every span of content words is a candidate. Articles are not doubled."""
    phrase = re.sub(r"(?i)^(its|his|her|their)\s", "the ", phrase)  # "And its trailer?": the trailer of the same
    if phrase.split()[0].lower() in _CLAUSE_WORDS:
        return _put_clause_in_place(question, phrase)
    words = _words(question)
    head = _words(phrase)[-1].lower() if _words(phrase) else ""
    spans = []
    for i, word in enumerate(words):
        if word.lower() in _STOP:
            continue
        for j in range(i, len(words)):
            if words[j].lower() in _STOP:
                break
            spans.append((i, j))
    aligned = [(i, j) for i, j in spans if words[j].lower() == head and (i == 0 or words[i - 1].lower() in _STOP)]
    # Otherwise a noun phrase of the question is the likelier place ("the header" for "its trailer"), then the rest.
    nouns = [" ".join(_words(p.removeprefix("the "))) for p in noun_phrases(question)]
    by_noun = lambda span: (nouns.index(" ".join(words[span[0]:span[1] + 1]))  # noqa: E731
                            if " ".join(words[span[0]:span[1] + 1]) in nouns else len(nouns), -span[0])
    rewrites = []
    for i, j in aligned or sorted(spans, key=by_noun):
        tail = r"\s+".join(re.escape(w) for w in words[i:j + 1])
        article = r"(?:\b(?:a|an|the)\s+)?" if re.match(r"(?i)(a|an|the)\s", phrase) else ""
        rewrites.append(re.sub(article + r"\b" + tail + r"\b", lambda _: phrase, question, count=1))
    return rewrites


def candidates(question: str, previous_question: str, previous_answer: str) -> list[str]:
    """Rewrites of a follow-up against the previous turn, most specific first, without repeats."""
    previous_answer = " ".join(previous_answer.split())
    short_answer = previous_answer and len(previous_answer.split()) <= 8
    # A quantity or a time ("How many bytes...?" "four") is not what "it" or "that version" stands for.
    entity = short_answer and not NUMERIC_QUESTION.search(previous_question)
    referents = ([previous_answer] if entity else []) + noun_phrases(previous_question)
    found: list[str] = []
    ellipsis = _ELLIPSIS.match(question)
    if ellipsis:
        found += _put_in_place(previous_question, ellipsis.group("rest"))
    words = _words(question)
    if len(words) <= 2 and words and words[0].lower() in _WH:  # "Why?" "When was it?"
        body = [w for w in _words(previous_question) if w.lower() not in _WH]
        found.append(f"{words[0]} {' '.join(body)}?")
    for referent in referents if not found else []:  # an elliptic phrase's own "its" reads as "the"
        found += _replace_pronoun(question, referent)
    if not found:
        found.append(f"{question} ({previous_question} {previous_answer})".strip())
    unique = []
    for rewrite in found:
        if rewrite not in unique and rewrite not in (question, previous_question):
            unique.append(rewrite)
    return unique


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

    return {w for w in normalize_answer(text).split() if w not in _STOP}


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


def ask_with_history(bot, question: str, history: list[tuple[str, str]]):
    """Answer `question` given the earlier turns [(question, answer text), ...], oldest first."""
    if not is_follow_up(question):
        return bot.ask(question)
    if not history:
        answer = bot.ask(question)
        if not answer.found:
            answer.message = UNRESOLVED
        return answer
    previous_question, previous_answer = history[-1]
    # The question as asked is the fall-back when no rewrite finds an answer: a "follow-up" may be complete on
    # its own ("Which countries does it include?" when the documents name one list of countries), but read alone
    # a pronoun matches whatever the passages say ("Which country is he the president of?" -> any country).
    rewrites = candidates(bot._check(question), previous_question, previous_answer)
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
