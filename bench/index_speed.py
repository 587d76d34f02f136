"""Index build time and retrieval recall on SQuAD v1.1 dev, per embedder runtime and precision.

    python bench/index_speed.py                 # every variant; writes bench/results/index_speed.json
    python bench/index_speed.py --variants onnx:int8,torch:bf16

The corpus is the 2,067 dev paragraphs (as `qa eval dev-v1.1.json.gz` uses them); the build is timed from
documents in memory to a saved index (chunking, embedding, FAISS, BM25, passage tokens for the reader, fsync'd
files). Recall@k: share of answerable questions with a gold answer inside the top k fused chunks.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from qa import QA
from qa.evaluate import RECALL_DEPTH, gold_ranks, read_questions
from qa.squad import SQUAD_DIR

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="torch:fp32,torch:bf16,onnx:fp32,onnx:int8,onnx:int8:128,torch:bf16:128",
                        help="runtime:precision[:embedder tokens per chunk], comma-separated")
    parser.add_argument("--limit", type=int, default=0, help="paragraphs (and their questions) to use; 0: all")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "index_speed.json"))
    args = parser.parse_args()
    questions, documents = read_questions(SQUAD_DIR / "dev-v1.1.json.gz")
    if args.limit:
        documents = documents[: args.limit]
        kept = {d.text for d in documents}
        questions = [q for q in questions if any(a and a in t for a in q.answers[:1] for t in kept)][: 5 * args.limit]
    results: dict = {"paragraphs": len(documents), "questions": len(questions), "date": time.strftime("%Y-%m-%d")}
    for variant in args.variants.split(","):
        runtime, precision, *tokens = variant.split(":")
        bot = QA(index_dir=tempfile.mkdtemp(prefix=f"index-speed-{runtime}-{precision}-"), corpus=[],
                 embed_precision=precision, runtime=runtime, embed_max_tokens=int(tokens[0]) if tokens else 0)
        started = time.perf_counter()
        bot.add_documents(documents)
        build = time.perf_counter() - started
        started = time.perf_counter()
        ranks = []
        for offset in range(0, len(questions), 256):
            ranks.extend(gold_ranks(bot, questions[offset : offset + 256]))
        retrieve = time.perf_counter() - started
        answerable = [r for r in ranks if r is not None]
        results[variant] = {
            "embedder": bot.embedder.name(), "chunks": len(bot.index.chunks), "build_seconds": round(build, 2),
            "chunks_per_second": round(len(bot.index.chunks) / build, 1),
            "retrieval_ms_per_question": round(1000 * retrieve / max(1, len(questions)), 2),
            **{f"recall@{k}": round(100 * sum(0 < r <= k for r in answerable) / len(answerable), 2)
               for k in (1, 3, 5, RECALL_DEPTH)},
        }
        print(variant, json.dumps(results[variant]), flush=True)
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
