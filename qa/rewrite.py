"""Rewrite a follow-up question against the previous turn: plain string rules, no model.

A question that leans on the previous turn ("Which country is he the president of?", "And the kmem group?", "And
if memory could not be allocated?", "Why?") is told from a full one (is_follow_up), and candidates() writes it
out in full in the ways it may be meant: a pronoun is replaced by the previous answer (unless that answer is a
quantity, a time, a version, a place or a manner) or by a noun phrase or code name of the previous question; an
elliptic question ("And X?", "What about X?") puts X in place of a phrase of the previous question, or of its
clause when X is one ("if ...", "when ..."); a name of a kind ("And --repeat?", "And %R?", "And version 1.5?")
takes the place of the previous question's name of that kind; a bare "Why?" or "In what units?" takes the rest
of the previous question; "an invalid one" names the previous question's thing. Contractions are spelled out
first, and "And what does it ...?" is a whole question. A pronoun that names nothing said before (a relative
"that", "Is it possible to ...?", a quoted "it", "this manual" when the previous turn spoke of no manual) leaves
the question as it is. qa/converse.py asks the candidates and picks an answer.
"""

from __future__ import annotations

import os
import re

from qa.aggregate import NUMERIC_QUESTION

FUNCTION_WORDS = frozenset(
    "a an the of and or to in on at by for from with into about as is was are were be been being do does did has "
    "have had what who whom whose when where which why how can could will would should may might must this that "
    "these those it its they them their he him his she her there then also some any many much more most other "
    "such than not no only own same so too very just all each both few one ones anyone i me my you your we us our"
    .split()
)
_WH = frozenset("what who whom whose when where which why how".split())
# Pronouns that stand for something said before; "him"/"he" for people, "it"/"they" for anything.
_PRONOUNS = {"he": "", "she": "", "him": "", "it": "", "they": "", "them": "", "this": "", "that": "",
             "these": "", "those": "", "his": "'s", "her": "'s", "its": "'s", "their": "'s"}
_PRONOUN = re.compile(r"\b(" + "|".join(_PRONOUNS) + r")\b(\s+\w+)?", re.IGNORECASE)  # and the word after it
# "an invalid one", "the other one": "one" stands for the thing the previous question named (not "one of", not
# "the one thing"; "that one" is a pronoun's).
_ONE = re.compile(r"(?i)\b(?:a|an|the|another|each)\s+(?:[a-z][\w-]*\s+)?(one)\b(?!\s+of\b)"
                  r"(?=\s*(?:[?.,!;]|$)|\s+(?:that|which|who|for|with|in|from|on|at|to|is|was|does|do|has|used)\b)")
_QUOTED = re.compile(r"(?:\b(?:the|a|an)\s+)?(?:\"[^\"]+\"|“[^”]+”|'[^']+'|‘[^’]+’)")
_ELLIPSIS = re.compile(r"^\s*(?:and what about|and how about|what about|how about|and|also)\s+(?P<rest>.+?)\s*\??\s*$",
                       re.IGNORECASE)
_WORD = re.compile(r"[\w'/\-.%$@#]+")  # "%M", "$HOME", "--output" are one word each
_INTRODUCERS = frozenset("the a an which what whose its his her their".split())  # a noun phrase follows
# Names in code or commands: "deflateEnd()", "Z_FINISH", "zpipe.c" (a subject after "does" has no article).
_IDENTIFIER = re.compile(r"(?<![\w.])(?:\w+\(\)|\w*_\w+|[a-z]+[A-Z]\w*|\w+\.[a-z]\w*)(?![\w(])")
# Clauses an elliptic follow-up swaps for the previous question's ("And if memory could not be allocated?").
_CLAUSE_WORDS = frozenset("if when whenever unless until while after before because since".split())
# Command-line options ("--maxdepth", "-o") are names too; "e-mail" is not (the dash must start the word).
_OPTION = re.compile(r"(?<![\w-])--?[A-Za-z][\w-]*")
_AUXILIARIES = frozenset("is are was were be been do does did can could will would shall should may might must has "
                         "have had".split())
_PREPOSITIONS = frozenset("in at on for from to by with of since until about under within".split())
# "What's", "isn't": contractions are spelled out so that the rules below see "what is", "is not".
_CONTRACTION = re.compile(r"(?i)\b(what|who|where|when|how|that|it|there|here)['’]s\b|\b(can|won)['’]t\b|"
                          r"\b(\w+)n['’]t\b|['’](re|ve|ll|d)\b")
# A pronoun inside an elliptic phrase; "that"/"this" only where no noun precedes it ("the one that ignores ...").
_REFERRING = re.compile(r"(?i)\b(?:it|they|them)\b|(?:^|\b(?:if|when|unless|while|after|before|because|since|of|for|"
                        r"to|with|in|on|at|by|about)\s+)(?:that|this)\b")
# "Is it possible to ...", "Does it make sense to ...", "How long does it take to ...", "Why is it that ...": an
# "it" that stands for nothing said before.
_DUMMY_IT = re.compile(r"(?i)\b(?:is|was|would|will|does|did|do)\s+it\s+(?:be\s+)?(?:possible|necessary|true|safe|"
                       r"ok|okay|better|worth|useful|common|important|normal|easy|hard|difficult|wise|advisable|"
                       r"required|recommended|needed|allowed|that|make\s+sense|take|matter)\b|\bit\s+(?:takes?|took|"
                       r"makes?\s+sense|is\s+(?:possible|necessary|worth|recommended|advisable))\b")
_QUOTES = "\"'‘’“”"
_NOT_A_THING = re.compile(r"(?i)^\W*(?:where|how|why)\b|\b(?:which|what)\s+(?:version|release|year)\b")
_DETERMINERS = frozenset("a an the this that these those its his her their some any every each".split())
_PARTICLES = frozenset("off on up down out in away back over".split())  # "turn that off": "that" is a pronoun
# Markdown around a quoted answer: "[RFC8878](https://...)" is RFC8878, "`build/meson`" is build/meson.
_MARKUP = re.compile(r"\[([^\]]*)\]\([^)]*\)?|[`*]+")
_SPELLED = {"re": " are", "ve": " have", "ll": " will", "d": " would"}

def spell_out(question: str) -> str:
    """Contractions spelled out: "What's its default?" -> "What is its default?"."""
    def spelled(match: re.Match) -> str:
        word, negated, stem, suffix = match.groups()
        if word:
            return f"{word} is"
        if negated:
            return "cannot" if negated.lower() == "can" else "will not"
        if stem:
            return f"{stem} not"
        return _SPELLED[suffix.lower()]
    question = _CONTRACTION.sub(spelled, question)
    # "Is not it deprecated?" reads as "Is it not deprecated?"
    return re.sub(r"(?i)^(\s*\w+) not (it|he|she|they|this|that|there|you|I|we)\b", r"\1 \2 not", question)


def _words(text: str) -> list[str]:
    return [w.strip(".") for w in _WORD.findall(text) if w.strip(".")]


def is_bare_question(question: str) -> bool:
    """A question word with at most a noun, a preposition before it or "how many" (no verb): "Why?", "Which
    year?", "In what units?", "As of which version?", "How many bytes?", "Which compiler version?" (the rest of
    the question is the previous one's); not "Who wrote zpipe.c?"."""
    words = [w.lower() for w in _words(question)]
    words = words[2:] if words[:2] in (["as", "of"], ["up", "to"], ["prior", "to"]) else words  # "As of which?"
    words = words[1:] if len(words) == 3 and words[0] in _PREPOSITIONS else words
    if words[:2] in (["how", "many"], ["how", "much"]):
        words = ["how"] + words[2:]
    # "Which compiler version?": after "which"/"what", two words are a noun phrase, not a verb and its object.
    return 0 < len(words) <= (3 if words[0] in ("which", "what", "whose") and not any(
        w in _AUXILIARIES | FUNCTION_WORDS - _WH for w in words) else 2) and words[0] in _WH


def _not_referring(question: str, at: int, known: frozenset[str] | None = None) -> bool:
    """Is the pronoun at this offset one that names nothing said before: a relative "that" after a noun ("the
    systems that ..."; not as the last word: "Which option changes that?"), a dummy "it" ("Is it possible to
    ...?"), a quoted word ('What does "it" mean?'), or, given the previous turn's words (known), a "this"/"that"
    before a noun the previous turn never used ("What does this manual describe?")?"""
    before, after = _words(question[:at]), _words(question[at:])
    word = after[0].lower() if after else ""
    quoted = at and question[at - 1] in _QUOTES and question[at + len(after[0]):][:1] in _QUOTES if after else False
    if quoted or any(m.start() <= at < m.end() for m in _DUMMY_IT.finditer(question)):
        return True
    if word not in ("that", "this", "these", "those") or len(after) == 1 or after[1].lower() in _PARTICLES | {"one"}:
        return False  # "Which option changes that?", "How do I turn that off?", "Who invented that one?"
    if before and before[-1].lower() not in _WH | FUNCTION_WORDS | _CLAUSE_WORDS:  # "if that is not set": a pronoun
        return True
    noun = after[1].lower()
    return (known is not None and len(after) > 2 and noun not in FUNCTION_WORDS and
            not any(_same_stem(noun, k) for k in known))


def _same_stem(word: str, other: str) -> bool:
    """"name" and "named", "help" and "helpful": a shared beginning all but a letter as long as the shorter."""
    shared = len(os.path.commonprefix([word, other.lower()]))
    return shared >= max(3, min(len(word), len(other)) - 1)


def _without_and(question: str) -> str:
    """"And what does it let you avoid?" is a whole question after "And" (what refers back is its pronoun, if
    any), unlike "And the kmem group?"."""
    starts = "|".join(_WH - _CLAUSE_WORDS | _AUXILIARIES)
    auxiliaries = "|".join(_AUXILIARIES)  # "And when does it end?" is a question; "And when it ends?" a clause
    prepositions = "|".join(_PREPOSITIONS)  # "And in which year did ...?"
    whole = re.sub(rf"(?i)^\s*(?:and|also|so)\s+(?=(?:(?:{prepositions})\s+)?(?:{starts})\b|"
                   rf"when\s+(?:{auxiliaries})\b)", "", question)
    return whole[:1].upper() + whole[1:]


def _one(question: str) -> re.Match | None:
    """"an invalid one" in a question; not "the one that removed VMS support" (a clause says which one)."""
    one = _ONE.search(question)
    return one if one and not re.match(r"\s+(?:that|which|who)\b", question[one.end(1):]) else None


def is_follow_up(question: str) -> bool:
    """Does the question refer back (a pronoun, "And X?", or a bare question word)?"""
    question = _without_and(spell_out(question))
    if _ELLIPSIS.match(question) or is_bare_question(question) or _one(question):
        return True
    return any(not _not_referring(question, match.start()) for match in _PRONOUN.finditer(question))


def topic_phrases(question: str) -> list[str]:
    """Runs of content words of a question, noun-like runs first (after an article or "which"/"what", or
    capitalised), each with its article when it had one ("the operator user")."""
    words = _words(question)
    runs, start = [], None
    for i, word in enumerate(words + [""]):
        if word and word.lower() not in FUNCTION_WORDS:
            start = i if start is None else start
        elif start is not None:
            runs.append((start, i))
            start = None
    ranked = []
    for i, j in runs:
        before = words[i - 1].lower() if i else ""
        noun_like = before in _INTRODUCERS or (i > 0 and words[i][0].isupper() and words[i] != "I")
        after = words[j].lower() if j < len(words) else ""
        # The main verb closes a run after "does"/"can" ("does man-db use ...") or before an object's article
        # ("Which flag selects a ..."), and a participle one after "was its" ("was its version 1.4 released").
        if j - i > 1 and (before in _AUXILIARIES - {"is", "are", "was", "were", "be", "been", "has", "have", "had"}
                          or (before in _WH | {"which", "what"} and after in _DETERMINERS)
                          or (noun_like and words[j - 1].lower().endswith("ed"))):
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
        if i and (words[i - 1].lower() in _INTRODUCERS or (first[0].isupper() and first != "I")):
            out.append(phrase)
    names = _IDENTIFIER.findall(question) + _OPTION.findall(question)
    return out + [name for name in names if name not in out]


def _replace_pronoun(question: str, referent: str, known: frozenset[str] | None = None) -> list[str]:
    """The question with its first referring pronoun (or "that NOUN") replaced by the referent; a possessive
    also as "the NOUN of referent" ("What is its rvalue argument?" -> "What is the rvalue argument of ffi_call?")."""
    rewrites = []
    for match in _PRONOUN.finditer(question):
        pronoun = match.group(1).lower()
        if _not_referring(question, match.start(1), known):  # "systems that do not have it": "it" is the one
            continue
        suffix = _PRONOUNS[pronoun]
        start, end = match.start(1), match.end(1)
        rewrites.append(question[:start] + referent + suffix + question[end:])
        following = (match.group(2) or "").strip().lower()
        if pronoun in ("that", "this", "these", "those") and following == "one":  # "that one" -> the referent
            rewrites[-1] = question[:start] + referent + question[match.end(2):]
        elif pronoun in ("that", "this", "these", "those") and following and \
                following not in FUNCTION_WORDS | _PARTICLES:  # "that name" -> the referent
            rewrites.append(question[:start] + referent + question[match.end(2):])
        owned = re.match(r"(?:\s+(?!(?:" + "|".join(FUNCTION_WORDS) + r")\b)[\w\-]+)+", question[end:], re.IGNORECASE)
        owned = owned and re.sub(r"(?<=\w)\s+\w+ed$", "", owned.group(0))  # "its value used" owns "value"
        if suffix and owned:
            rewrites.append(f"{question[:start]}the{owned} of {referent}{question[end + len(owned):]}")
    return rewrites


_ADVERBIAL = re.compile(r"(?i)\b(?:at|in|on|during|under|within|without|upon|after|before|once)\b")


def _put_clause_in_place(question: str, clause: str) -> list[str]:
    """"And if memory could not be allocated?" swaps the previous question's clause (if, when, ...); a question
    without one has its closing adverbial swapped instead ("... set to at the end of the file?" -> "... set to
    when the end has not been reached?"), or the clause added at its end."""
    clause = clause.rstrip("?")
    body = question.rstrip().rstrip("?")
    words = r"\b(?:" + "|".join(_CLAUSE_WORDS) + r")\b"
    own = re.search(r"(?i)(?<=\s)" + words + r".*", body)  # not the question's own "When ...?"
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
        if word.lower() in FUNCTION_WORDS:
            continue
        for j in range(i, len(words)):
            if words[j].lower() in FUNCTION_WORDS:
                break
            spans.append((i, j))
    aligned = [(i, j) for i, j in spans
               if words[j].lower() == head and (i == 0 or words[i - 1].lower() in FUNCTION_WORDS)]
    # "And --repeat?", "And version 1.5?", "And on 3.4 or newer?" take the place of the option, the number...
    # of the same kind (with the words or the preposition before it: "version 1.4", "with GCC 3.2.2").
    own = _words(phrase)
    shaped = [k for k, word in enumerate(own) if _shape(word)]
    if shaped:
        lead = [w.lower() for w in own[:shaped[-1]]]

        def start(j: int) -> int:
            if [w.lower() for w in words[max(0, j - len(lead)):j]] == lead:
                return j - len(lead)
            before = [i for i in range(max(0, j - 3), j) if words[i].lower() in _PREPOSITIONS]
            return before[-1] if lead and lead[0] in _PREPOSITIONS and before else j

        same = [j for j, word in enumerate(words) if _shape(word) == _shape(own[shaped[-1]])]
        aligned = [(start(j), j) for j in same] or aligned
    # 'And the "grind" part?' after 'How do you pronounce the "Val" in Valgrind?': quoted term for quoted term;
    # "And for an internal error?" after "... return for a corrupt file?": the phrase after the same preposition.
    quoted = _QUOTED.search(question)
    first = [question[:quoted.start()] + phrase + question[quoted.end():]] if quoted and _QUOTED.search(phrase) else []
    if own and own[0].lower() in _PREPOSITIONS and not shaped:
        same = list(re.finditer(rf"(?i)(?<=\s){re.escape(own[0])}\s", question))
        if same:
            return first + [question[:same[-1].start()] + phrase + "?"]
        return first + [question.rstrip().rstrip("?") + " " + phrase + "?"]  # "And with systemd?": at the end
    # Otherwise a noun phrase of the question is the likelier place ("the header" for "its trailer"), then the rest.
    nouns = [" ".join(_words(p.removeprefix("the "))) for p in noun_phrases(question)]
    # ... as long as the phrase first ("And lz4?" after "What is the compression ratio of zstd?": zstd).
    size = len([w for w in own if w.lower() not in FUNCTION_WORDS])
    by_noun = lambda span: (span[1] - span[0] + 1 != size,  # noqa: E731
                            nouns.index(" ".join(words[span[0]:span[1] + 1]))
                            if " ".join(words[span[0]:span[1] + 1]) in nouns else len(nouns), -span[0])
    rewrites = first
    for i, j in aligned or sorted(spans, key=by_noun):
        tail = r"\s+".join(re.escape(w) for w in words[i:j + 1])
        article = r"(?:\b(?:a|an|the)\s+)?" if re.match(r"(?i)(a|an|the)\s", phrase) else ""
        if i and words[i - 1].lower() in ("which", "what"):  # "Which other branch ...", not "Which the other ..."
            phrase = re.sub(r"(?i)^(?:a|an|the)\s+", "", phrase)
        tail += r"(?:\(\))?" if phrase.endswith("()") else ""  # "deflateInit()" goes whole
        rewrites.append(re.sub(article + r"(?<![\w%$@#-])" + tail + r"(?![\w-])", lambda _: phrase, question,
                               count=1))
    return rewrites


def _shape(word: str) -> str:
    """What kind of name a word is, when it is one: an option, a %-/$-/@-name, a number or a name in code."""
    word = word.strip("?.,")
    if _OPTION.fullmatch(word):
        return "option"
    if word[:1] in "%$@#" and len(word) > 1:
        return word[0]
    if re.fullmatch(r"\d+(?:\.\d+)*", word):
        return "number"
    return "code" if _IDENTIFIER.fullmatch(word) else ""


def candidates(question: str, previous_question: str, previous_answer: str) -> list[str]:
    """Rewrites of a follow-up against the previous turn, most specific first, without repeats."""
    previous_answer = " ".join(_MARKUP.sub(lambda m: m.group(1) or "", previous_answer).split())
    previous_question = spell_out(previous_question)
    short_answer = previous_answer and len(previous_answer.split()) <= 8
    # A quantity, a time, a version, a place, a manner or a reason ("four", "2.1.x", "within build/meson") is
    # not what "it" or "that version" stands for.
    entity = short_answer and not NUMERIC_QUESTION.search(previous_question) and not _NOT_A_THING.search(
        previous_question) and not re.match(rf"(?i)(?:{'|'.join(_PREPOSITIONS)})\b|\d", previous_answer)
    # An answer around a name in code ("void ffi_call") also stands for that name alone; a question without a
    # noun phrase ("What is xsltproc?") is about its content words.
    names = [n for n in _IDENTIFIER.findall(previous_answer) + _OPTION.findall(previous_answer)
             if n != previous_answer] if entity else []
    things = noun_phrases(previous_question) or topic_phrases(previous_question)
    referents = ([previous_answer] if entity else []) + names + things
    # "he", "she": a name (capitalised), when the previous turn has one; "they": a plural or a list.
    if re.search(r"(?i)\b(?:he|she|him|his|her)\b", question):
        referents = [r for r in referents if r[:1].isupper()] or referents
    elif re.search(r"(?i)\b(?:they|them|their)\b", question):
        referents = [r for r in referents if re.search(r"s\b|,| and ", r)] or referents
    known = frozenset(w.lower() for w in _words(previous_question + " " + previous_answer))
    found: list[str] = []
    question = _without_and(spell_out(question))
    ellipsis = _ELLIPSIS.match(question)
    if ellipsis:
        rest, one = ellipsis.group("rest"), _ONE.search(ellipsis.group("rest"))
        if one and things:  # "And the other one?" after "Which branch ...?": the other branch
            rest = rest[:one.start(1)] + _words(things[0])[-1] + rest[one.end(1):]
        placed = _put_in_place(previous_question, rest)
        # "And the one that ignores the defaults?" after "Which option skips the DTD?": which option ignores ...
        clause = re.match(r"(?i)(?:the|a|an)\s+(?:\w+\s+)?one\s+(?:that|which|who)\s+(.+)", ellipsis.group("rest"))
        previous = _words(previous_question)
        if clause and len(previous) > 2 and previous[0].lower() in ("which", "what"):
            placed = [" ".join(previous[:k]) + f" {clause.group(1)}?" for k in (2, 3)
                      if previous[k - 1].lower() not in FUNCTION_WORDS]
        # A pronoun in the new phrase ("And if that is not set?") names what the previous turn was about: its
        # answer, or else its first noun phrase.
        if referents and _REFERRING.search(ellipsis.group("rest")):
            placed = [rewrite for place in placed[:2] for rewrite in _replace_pronoun(place, referents[0])[:1]]
        found += placed
    if is_bare_question(question) and not ellipsis:  # "Why?" "In what units?": the rest of the previous question
        words, previous = _words(question), _words(previous_question)
        wh = next((i for i, w in enumerate(previous) if w.lower() in _WH), -1)
        if wh >= 0 and wh + 1 < len(previous) and previous[wh].lower() == "how":  # "how many", "how long"
            wh += previous[wh + 1].lower() in ("many", "much", "long", "often", "far", "big", "large", "old")
        # "Which compiler version?" after "Which CPU was used ...?" takes the place of "Which CPU".
        asked = [w.lower() for w in words if w.lower() not in _PREPOSITIONS and w.lower() != "as"]
        if len(asked) > 1 and asked[0] in ("which", "what", "whose") and wh >= 0 and \
                previous[wh].lower() in ("which", "what", "whose"):
            ends = [k for k in range(wh + 2, min(wh + 4, len(previous))) if previous[k].lower() in FUNCTION_WORDS]
            end = ends[0] if ends and all(w.lower() not in FUNCTION_WORDS for w in previous[wh + 1:ends[0]]) else wh + 1
            # "Which CPU was used": the noun ends before "was"; "What release added the hack": before "added".
            end -= previous[end].lower() in _DETERMINERS if end > wh + 1 else 0
            del previous[wh + 1:end]
        body = previous[wh + 1:] if wh >= 0 else [previous[0].lower()] + previous[1:]  # "In which version is ..."
        found.append(f"{' '.join(words)} {' '.join(body)}?")
    for referent in referents if not found else []:  # an elliptic phrase's own "its" reads as "the"
        found += _replace_pronoun(question, referent, known)
    one = _one(question)
    for phrase in things[:2] if one and not ellipsis else []:
        found.append(question[:one.start(1)] + re.sub(r"^(?:the|a|an)\s+", "", phrase) + question[one.end(1):])
    refers = ellipsis or is_bare_question(question) or one or any(
        not _not_referring(question, m.start(), known) for m in _PRONOUN.finditer(question))
    if not found and refers:
        found.append(f"{question} ({previous_question} {previous_answer})".strip())
    unique = []
    for rewrite in found:
        if rewrite not in unique and rewrite not in (question, previous_question):
            unique.append(rewrite)
    return unique
