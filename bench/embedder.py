"""Retrieval with the base and the shipped embedder: where the product's fused ranking (and the dense ranking
alone) puts the first chunk holding a gold answer, each set's paragraphs as the corpus.

    python bench/embedder.py [--sets v1.1 xquad covid] [--embedders base shipped]   # bench/results/embedder.json

v1.1: SQuAD v1.1 dev (10,570 questions); xquad: XQuAD-en (1,190); covid: COVID-QA's answerable questions
(scientific articles: a domain the shipped embedder was not trained on).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.answer import QA  # noqa: E402
from qa.config import base_embedder, default_embedder  # noqa: E402
from qa.evaluate import gold_ranks, read_questions  # noqa: E402
from qa.squad import SQUAD_DIR  # noqa: E402

SETS = {"v1.1": SQUAD_DIR / "dev-v1.1.json.gz", "xquad": SQUAD_DIR / "extra" / "xquad.en.json.gz",
        "covid": SQUAD_DIR / "extra" / "covid-qa-200423_covidQA.json.gz"}
EMBEDDERS = {"base": base_embedder, "shipped": default_embedder}


def recall(embedder: str, path: Path) -> dict:
    questions, documents = read_questions(path)
    questions = [q for q in questions if q.answers]
    started = time.perf_counter()
    bot = QA(corpus=[], index_dir=tempfile.mkdtemp(prefix="qa-embedder-"), embedder=embedder)
    bot.add_documents(documents)
    row = {"questions": len(questions), "chunks": len(bot.index.chunks),
           "build_seconds": round(time.perf_counter() - started, 1)}
    for ranking, use_bm25 in (("fused", True), ("dense", False)):
        bot.config.use_bm25 = use_bm25
        ranks = np.array(gold_ranks(bot, questions))
        row.update({f"{ranking}_recall@{k}": round(100 * float(np.mean((ranks > 0) & (ranks <= k))), 2)
                    for k in (1, 2, 4, 10)})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--embedders", nargs="+", default=list(EMBEDDERS), choices=list(EMBEDDERS))
    args = parser.parse_args()
    out = ROOT / "bench" / "results" / "embedder.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    for name in args.embedders:
        for set_name in args.sets:
            results.setdefault(name, {})[set_name] = recall(EMBEDDERS[name](), SETS[set_name])
            print(name, set_name, results[name][set_name], file=sys.stderr)
            out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
