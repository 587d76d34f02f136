"""Rewriting a follow-up against the previous turn (qa/rewrite.py): string rules, no model."""

from __future__ import annotations

from qa.rewrite import candidates, is_follow_up, noun_phrases, spell_out, topic_phrases


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
    assert topic_phrases("What does man-db use for translations?")[0] == "man-db"
    assert topic_phrases("Which flag selects a 900k block size?")[0] == "flag"


def test_elliptic_clauses_possessives_and_code_names_are_read_against_the_previous_question():
    assert candidates("And if memory could not be allocated?",
                      "What does inf() return if the deflate data is invalid or incomplete?", "Z_DATA_ERROR") == \
        ["What does inf() return if memory could not be allocated?"]
    assert candidates("And its trailer?", "How many bytes is the header of the zlib format?", "two bytes")[0] == \
        "How many bytes is the trailer of the zlib format?"
    assert "When can deflateEnd() be called?" in candidates("When can it be called?", "What does deflateEnd() free?",
                                                            "the allocated zlib state")
    # A quantity or a time is not what "it" stands for; the thing the previous question asked about is.
    rewrites = candidates("What does it hold?", "How many bytes is the trailer of the zlib format?", "four")
    assert rewrites[0] == "What does the trailer hold?" and "What does four hold?" not in rewrites
    # A clause after a question without one takes the place of its closing adverbial, or is added at its end.
    rewrites = candidates("And when the end of the input has not been reached yet?",
                          "What is flush set to at the end of the input file?", "Z_FINISH")
    assert rewrites == ["What is flush set to when the end of the input has not been reached yet?",
                        "What is flush set to at the end of the input file when the end of the input has not been "
                        "reached yet?"]
    assert "What does deflate() return when it could not consume more input?" not in candidates(
        "What about when it blocks?", "What does deflate() return when it could not consume more input?", "Z_BUF_ERROR")


def test_contractions_trailing_pronouns_and_fragments_are_follow_ups():
    assert spell_out("What's its default? It isn't set, they're gone, I can't") == \
        "What is its default? It is not set, they are gone, I cannot"
    assert "What is gzip?" in candidates("What's that?", "Which tool compresses the files?", "gzip")
    assert is_follow_up("Which option changes that?") and not is_follow_up("Which option changes that file?")
    assert candidates("In what units?", "What does the --timing option display?", "the time used") == \
        ["In what units does the --timing option display?"]
    assert candidates("Why?", "How many pairs can I pass with --param?", "32") == \
        ["Why pairs can I pass with --param?"]  # not "Why many pairs ..."
    # A whole question after "And" is read as a question; a clause after "And" stays elliptic.
    assert not is_follow_up("And how do I get a literal percent sign?")
    assert is_follow_up("And when the end of the input has not been reached yet?")
    assert candidates("And what does it let you avoid?", "What does a lock file state?", "the exact versions")[0] == \
        "What does the exact versions let you avoid?"


def test_pronouns_in_clauses_possessives_names_and_one_are_resolved():
    # "that" of the new clause is the previous answer; a relative "that" is left alone.
    assert candidates("And if that isn't set?", "Which catalog does the tool read by default?", "CATALOG_PATH") == \
        ["Which catalog does the tool read by default if CATALOG_PATH is not set?"]
    assert candidates("What's used on systems that don't have it?", "Which call reports the usage?", "wait3")[0] == \
        "What is used on systems that do not have wait3?"
    rewrites = candidates("When is its value used?", "Which environment variable holds the format?", "TIME")
    assert "When is the value of TIME used?" in rewrites
    # An answer around a name in code also stands for the name alone.
    assert "What is the rvalue argument of ffi_call?" in candidates(
        "What is its rvalue argument?", "Which function makes the call?", "void ffi_call")
    assert "What happens with an invalid escape?" in candidates(
        "What happens with an invalid one?", "Which character starts an escape?", "a backslash")


def test_an_elliptic_name_takes_the_place_of_a_name_of_its_kind():
    assert candidates("And --repeat?", "What does the --timing option display?", "the time") == \
        ["What does the --repeat option display?"]
    assert candidates("And %R?", "What does the %F specifier count?", "page faults") == \
        ["What does the %R specifier count?"]
    assert candidates("And version 1.5?", "What did version 1.4 add?", "a hack") == ["What did version 1.5 add?"]
    assert candidates("And deflateEnd()?", "What does deflateInit() allocate?", "memory") == \
        ["What does deflateEnd() allocate?"]
    assert candidates("And on 3.4 or newer?", "How do I turn the pool off with GCC 3.2.2?", "export X")[0] == \
        "How do I turn the pool off on 3.4 or newer?"
    assert candidates('And the "grind" part?', 'How do you pronounce the "Val" in Valgrind?', "value")[0] == \
        'How do you pronounce the "grind" part in Valgrind?'


def test_pronouns_that_name_nothing_said_before_leave_the_question_as_it_is():
    previous = ("What does the -s flag do in bzip2?", "Reduce memory usage")
    for question in ["Is it possible to decompress a file from standard input?",
                     "How many bytes does it take to decompress a block?", 'What does "it" mean in ps?',
                     "What does this manual describe?", "What is the one thing bzip2 cannot recover?",
                     "Which release was the one that removed support for VMS?",
                     "And in which year did the project move?"]:
        assert candidates(question, *previous) == [], question
    assert not is_follow_up("Who wrote zpipe.c?") and is_follow_up("How many bytes?")
    # ... while a demonstrative before a word of the previous turn, an adjective or a particle still refers back.
    assert "Why was Heimdall not used?" in candidates("Why was that name not used?",
                                                      "What was the project originally named?", "Heimdall")
    assert candidates("Why is that helpful?", "Which library does the interface not need?", "stdio.h")[0] == \
        "Why is stdio.h helpful?"
    rewrites = candidates("How do I turn that off with GCC 3.2.2?", "What do STL implementations use?", "pools")
    assert rewrites[0] == "How do I turn pools off with GCC 3.2.2?" and all(" off " in r for r in rewrites)
    assert candidates("When did he start?", "Who wrote the new ps program?", "Albert Cahalan") == \
        ["When did Albert Cahalan start?"]
    assert candidates("What about -k?", *previous) == ["What does the -k flag do in bzip2?"]
    assert candidates("And for an internal error?", "Which status does bzip2 return for a corrupt file?", "2") == \
        ["Which status does bzip2 return for an internal error?"]


def test_fragments_one_and_answers_that_are_no_thing_read_against_the_previous_turn():
    assert is_follow_up("As of which version?") and is_follow_up("Which compiler version?")
    assert candidates("In which version?", "Is prohibit-password the upstream default?", "yes") == \
        ["In which version is prohibit-password the upstream default?"]
    assert candidates("Which compiler version?", "Which CPU was used for the server?", "i7") == \
        ["Which compiler version was used for the server?"]
    assert candidates("And with systemd?", "Do the agents terminate automatically?", "no") == \
        ["Do the agents terminate automatically with systemd?"]
    assert candidates("Which version invented that one?", "Which option makes ssh trust X?", "ForwardX11Trusted")[0] \
        == "Which version invented ForwardX11Trusted?"
    assert candidates("And the other one?", "Which branch are contributions merged into?", "the dev branch") == \
        ["Which other branch are contributions merged into?"]
    assert "Which option ignores the defaults?" in candidates("And the one that ignores the defaults?",
                                                              "Which option skips the DTD?", "--novalid")
    assert candidates("And lz4?", "What is the compression ratio of zstd?", "2.887")[0] == \
        "What is the compression ratio of lz4?"
    # A place or a version is not what "it" stands for; "Isn't it" reads as "Is it not".
    assert candidates("Isn't it deprecated?", "Where should the Protocol option be removed from?", "/etc/ssh") == \
        ["Is the Protocol option not deprecated?"]
    assert not any("2.1.x" in r for r in candidates("Do they stop?", "Since which version do agents start?", "2.1.x"))
    assert candidates("Does it matter which build system I use?", "How do I start the agent?", "gpgconf") == []


def test_markdown_around_an_answer_and_plural_pronouns():
    assert candidates("Under which licence is it released?", "Which RFC documents the format?",
                      "[RFC8878](https://datatracker.ietf.org/doc/html/rfc8878")[0] == \
        "Under which licence is RFC8878 released?"
    assert candidates("What are they used for?", "Which variables does the script read?",
                      "`$ZSTD_BIN` and `$DATAGEN_BIN`")[0] == "What are $ZSTD_BIN and $DATAGEN_BIN used for?"
