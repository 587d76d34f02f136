"""Lexical tokenisers for BM25, measured by where the fused ranking puts the gold chunk.

Chosen on questions derived from SQuAD train (qa.calibrate.derived_set: 60 train articles as the corpus), then
reported on SQuAD v1.1 dev (its 2,067 paragraphs as the corpus). The dense ranking is the same in every variant.

    python bench/lexical.py [--dev]        # writes bench/results/lexical.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from qa.answer import QA
from qa.calibrate import derived_set
from qa.evaluate import _first_holding_gold, read_questions
from qa.index import bm25_tokens, plain_tokens
from qa.retrieve import reciprocal_rank_fusion

ROOT = Path(__file__).resolve().parent.parent
SQUAD = ROOT.parent / "shared" / "data" / "squad"
VARIANTS = {"plain words": plain_tokens, "stop words out, stemmed, identifiers kept (default)": bm25_tokens}


def gold_ranks_for(bot: QA, questions, tokenise, depth: int = 20) -> list[int]:
    import bm25s

    chunks = bot.index.chunks
    model = bm25s.BM25()
    model.index([tokenise(c.text) or ["\u2205"] for c in chunks], show_progress=False)
    vocabulary = model.vocab_dict
    texts = [q.question for q in questions]
    dense = bot.index.search_dense(bot.embedder.embed_questions(texts), depth)
    ranks = []
    for q, dense_hits in zip(questions, dense):
        tokens = [t for t in tokenise(q.question) if t in vocabulary]
        lexical = []
        if tokens:
            ids, scores = model.retrieve([tokens], k=min(depth, len(chunks)), show_progress=False, n_threads=1)
            lexical = [int(i) for i, s in zip(ids[0], scores[0]) if s > 0]
        fused = reciprocal_rank_fusion([lexical, [i for i, _ in dense_hits]], bot.config.rrf_k)
        ranks.append(_first_holding_gold([chunks[i].text for i, _ in fused[:10]], q.answers))
    return ranks


def measure(bot: QA, questions) -> dict:
    results = {}
    for name, tokenise in VARIANTS.items():
        started = time.perf_counter()
        ranks = np.array(gold_ranks_for(bot, questions, tokenise))
        results[name] = {f"recall@{k}": round(100 * float(np.mean((ranks > 0) & (ranks <= k))), 2) for k in (1, 2, 4, 10)}
        results[name]["seconds"] = round(time.perf_counter() - started, 1)
        print(name, results[name], file=sys.stderr)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dev", action="store_true", help="also report on SQuAD v1.1 dev")
    args = parser.parse_args()
    results = {}
    data = derived_set(SQUAD / "train-v1.1.json.gz")
    bot = QA(corpus=[], index_dir=tempfile.mkdtemp(prefix="qa-lexical-"))
    bot.add_documents(data.documents)
    answerable = [q for q in data.questions if q.answers]
    results["train-derived (60 articles)"] = {"questions": len(answerable), "chunks": len(bot.index.chunks),
                                              **measure(bot, answerable)}
    if args.dev:
        questions, documents = read_questions(SQUAD / "dev-v1.1.json.gz")
        bot = QA(corpus=[], index_dir=tempfile.mkdtemp(prefix="qa-lexical-dev-"))
        bot.add_documents(documents)
        results["SQuAD v1.1 dev"] = {"questions": len(questions), "chunks": len(bot.index.chunks),
                                     **measure(bot, questions)}
    out = ROOT / "bench" / "results" / "lexical.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
