"""ask() and retrieval with the index's engines against the previous ones, in turns, on one index.

    python bench/scale.py --articles 442 --keep /tmp/scale442     # builds and keeps the index
    python bench/engines.py /tmp/scale442 [--questions 200]

Previous engines: FAISS IndexFlatIP over all vectors in memory and bm25s over all chunks (built here, as main
did on first use); now: faiss.knn over the memory-mapped segments and SQLite FTS5. Every question is asked once
with each engine first (so the reader's token cache holds the same passages for both), then in alternating
order, and the times are compared. Results: bench/results/engines.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.lexical import bm25s_search  # noqa: E402
from qa import QA  # noqa: E402

TRAIN = ROOT.parent / "shared" / "data" / "squad" / "train-v1.1.json.gz"


def previous_engines(index):
    import faiss

    flat = faiss.IndexFlatIP(index.fingerprint.dimension)
    numbers = []
    for segment in index.segments:
        live = ~np.isin(segment.ids, index.dead)
        flat.add(np.ascontiguousarray(segment.vectors[live]))
        numbers.extend(int(n) for n in segment.ids[live])

    def dense(queries, k):
        scores, rows = flat.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return [[(numbers[r], float(s)) for r, s in zip(rr, ss) if r >= 0] for rr, ss in zip(rows, scores)]

    return dense, bm25s_search(index.store.numbered_chunks())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="a folder bench/scale.py --keep made (corpus/ and index/)")
    parser.add_argument("--questions", type=int, default=200)
    args = parser.parse_args()
    folder = Path(args.folder)
    bot = QA.from_paths([folder / "corpus"], index_dir=folder / "index")
    index = bot.index
    articles = len(list((folder / "corpus").iterdir()))
    with gzip.open(TRAIN, "rt", encoding="utf-8") as handle:
        data = json.load(handle)["data"][:articles]
    questions = [q["question"] for a in data for p in a["paragraphs"][1:3] for q in p["qas"][:1]][: args.questions]
    engines = {"now": (index.search_dense, index.search_bm25), "previous": previous_engines(index)}
    times: dict = {name: {"ask": [], "retrieve": []} for name in engines}
    for measured in (False, True):
        for n, question in enumerate(questions):
            for name in (list(engines) if n % 2 else list(engines)[::-1]):
                index.search_dense, index.search_bm25 = engines[name]
                started = time.perf_counter()
                bot.retriever.run(index, [question])
                retrieved = time.perf_counter()
                bot.ask(question)
                if measured:
                    times[name]["retrieve"].append((retrieved - started) * 1000)
                    times[name]["ask"].append((time.perf_counter() - retrieved) * 1000)
    result = {"chunks": len(index.chunks), "questions": len(questions)}
    for name, parts in times.items():
        result[name] = {f"{part}_p50_ms": round(statistics.median(values), 2) for part, values in parts.items()}
    print(json.dumps(result, indent=1))
    (ROOT / "bench" / "results" / "engines.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
