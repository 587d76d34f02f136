"""A tiny SQuAD file for training tests: three paragraphs of two articles, six answerable questions."""

import json

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


def write_squad(path):
    """The tiny set as a SQuAD v1.1 file at `path`."""
    data = {"data": [{"title": title, "paragraphs": [{"context": context, "qas": [
        {"id": f"{c}-{n}", "question": q, "answers": [{"text": a, "answer_start": context.index(a)}]}
        for n, (ci, q, a) in enumerate(QUESTIONS) if ci == c]}]} for c, (title, context) in enumerate(CONTEXTS)]}
    path.write_text(json.dumps(data))
    return path
