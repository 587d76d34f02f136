"""Lexical search: the index's SQLite FTS5 BM25 against bm25s built in memory over the same chunks.

    python bench/lexical_engines.py [--limit 10570] [--index-dir DIR]

SQuAD v1.1 dev paragraphs are the corpus. For each engine: recall@1/@5 of the lexical ranking alone and of the
fused ranking the product uses (gold answer text in the chunk), and the lexical search time per question.
Results: bench/results/lexical_engines.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa import QA, index as index_module  # noqa: E402
from qa.evaluate import _first_holding_gold, gold_ranks, read_questions  # noqa: E402
from qa.index import bm25_tokens  # noqa: E402

DEV = ROOT.parent / "shared" / "data" / "squad" / "dev-v1.1.json.gz"


def bm25s_search(chunks: list):
    """The previous engine: bm25s over every chunk, held in memory; returns a search_bm25 replacement."""
    import bm25s

    numbers = [n for n, _ in chunks]
    model = bm25s.BM25()
    model.index([bm25_tokens(c.text) or ["\u2205"] for _, c in chunks], show_progress=False)

    def search(questions: list[str], k: int) -> list[list[tuple[int, float]]]:
        results = []
        for question in questions:
            tokens = [t for t in bm25_tokens(question) if t in model.vocab_dict]
            if not tokens:
                results.append([])
                continue
            ids, scores = model.retrieve([tokens], k=min(k, len(numbers)), show_progress=False, n_threads=1)
            results.append([(numbers[int(i)], float(s)) for i, s in zip(ids[0], scores[0]) if s > 0])
        return results

    return search


def measure(bot: QA, questions, search) -> dict:
    index = bot.index
    index.search_bm25 = search
    lexical, times = [], []
    for q in questions:
        started = time.perf_counter()
        hits = search([q.question], 5)[0]
        times.append((time.perf_counter() - started) * 1000)
        lexical.append(_first_holding_gold([index.chunks[n].text for n, _ in hits], q.answers))
    fused = []
    for start in range(0, len(questions), 64):
        fused.extend(gold_ranks(bot, questions[start:start + 64]))

    def recall(ranks, k):
        return round(100 * sum(1 for r in ranks if r and r <= k) / len(ranks), 2)

    return {"lexical_recall@1": recall(lexical, 1), "lexical_recall@5": recall(lexical, 5),
            "fused_recall@1": recall(fused, 1), "fused_recall@5": recall(fused, 5),
            "lexical_ms_p50": round(statistics.median(times), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=0, help="questions (0: all 10,570)")
    parser.add_argument("--index-dir", default="", help="reuse an index of the dev paragraphs (built if missing)")
    parser.add_argument("--max-share", type=float, nargs="+", default=[index_module.LEXICAL_MAX_SHARE],
                        help="leave out query terms in this share of the chunks or more (one run each)")
    parser.add_argument("--fts5-only", action="store_true")
    args = parser.parse_args()
    questions, documents = read_questions(DEV)
    questions = [q for q in questions if q.answers][: args.limit or None]
    bot = QA(corpus=[], index_dir=args.index_dir or tempfile.mkdtemp(prefix="qa-lexical-"))
    bot.add_documents([d for d in documents if d.id not in bot.index.documents])
    chunks = bot.store.numbered_chunks()
    fts5 = bot.index.search_bm25
    results = {"questions": len(questions), "chunks": len(chunks)}
    for share in args.max_share:
        index_module.LEXICAL_MAX_SHARE = share
        results[f"fts5, terms in under {share:.0%} of chunks"] = measure(bot, questions, fts5)
    if not args.fts5_only:
        results["bm25s"] = measure(bot, questions, bm25s_search(chunks))
    print(json.dumps(results, indent=1))
    output = ROOT / "bench" / "results" / "lexical_engines.json"
    saved = json.loads(output.read_text()) if output.exists() else {}
    saved.update({k: v for k, v in results.items() if isinstance(v, dict)}, questions=len(questions), chunks=len(chunks))
    output.write_text(json.dumps(saved, indent=1) + "\n")


if __name__ == "__main__":
    main()
