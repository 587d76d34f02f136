"""Follow-up questions read against the previous turn (qa/converse.py)."""

from __future__ import annotations

import json

from qa.config import PROJECT_ROOT
from qa.converse import UNRESOLVED, candidates, is_follow_up, noun_phrases
from qa.evaluate import f1_score

CONVERSATIONS = PROJECT_ROOT / "tests" / "data" / "conversations.jsonl"


def test_follow_ups_are_told_from_full_questions():
    for question in ["Which country is he the president of?", "And the kmem group?", "What about a floppy drive?",
                     "Why?", "What can its members reconfigure?", "Which of them is chairing the group?"]:
        assert is_follow_up(question), question
    for question in ["Who chaired the session?", "Which group owns source code in /usr/src?",
                     "What is the group that owns /usr/src?"]:
        assert not is_follow_up(question), question


def test_rewrites_put_the_previous_answer_or_phrase_in_place():
    assert "Which country is Emomali Rahmon the president of?" in candidates(
        "Which country is he the president of?", "Who chaired the session?", "Emomali Rahmon")
    assert candidates("And the kmem group?", "Which files can the shadow group read?", "/etc/shadow")[0] == \
        "Which files can the kmem group read?"
    assert candidates("What about a floppy drive?", "Which group can access a CD-ROM drive?", "cdrom")[0] == \
        "Which group can access a floppy drive?"
    assert "Why is ssh-agent setgid to _ssh?" not in candidates("Why?", "What is ssh-agent setgid to?", "_ssh")
    assert candidates("Why?", "What is ssh-agent setgid to?", "_ssh")[0].startswith("Why is ssh-agent setgid")
    assert noun_phrases("Who chaired the session?") == ["the session"]  # a verb is no referent


def test_history_answers_seed_follow_ups_better_than_without(shipped_bot):
    conversations = [json.loads(line) for line in CONVERSATIONS.read_text().splitlines()]
    conversations = [c for c in conversations if c["corpus"] == "seed"]
    assert len(conversations) >= 15
    right_with = right_without = follow_ups = 0
    for conversation in conversations:
        talk = shipped_bot.conversation()
        for number, turn in enumerate(conversation["turns"]):
            answer = talk.ask(turn["question"])
            if number:
                follow_ups += 1
                right_with += f1_score(answer.text, turn["answers"]) >= 0.5
                right_without += f1_score(shipped_bot.ask(turn["question"]).text, turn["answers"]) >= 0.5
    assert right_with > right_without and right_with >= 0.65 * follow_ups, (right_with, right_without, follow_ups)


def test_a_follow_up_with_nothing_to_refer_to_says_so(shipped_bot):
    answer = shipped_bot.ask("Why was that name not used?", history=[])
    assert not answer.found and answer.message == UNRESOLVED
    talk = shipped_bot.conversation()
    talk.ask("Who chaired the session?")
    answer = talk.ask("Which country is he the president of?")
    assert answer.found and "Tajik" in answer.text
    assert answer.question != "Which country is he the president of?", "read against the earlier turn"
