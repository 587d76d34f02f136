"""Two ranking choices, measured on SQuAD v1.1 dev over all 2,067 paragraphs:

1. how reciprocal-rank fusion breaks ties between the dense and the BM25 ranking (which order goes first):
   the share of questions whose first, first two, first four fused chunks hold a gold answer, all 10,570 questions;
2. how the reader ranks spans of different windows: by their margin over their own window's [CLS] score (the
   product) or by raw start + end logit: end-to-end F1 over the same four retrieved chunks, read at once.

    python bench/ranking.py [--sample 1000]     # writes bench/results/ranking.json
"""

import argparse
import json
import random
import tempfile
from pathlib import Path

from tqdm.auto import tqdm

from qa import QA
from qa.evaluate import _first_holding_gold, f1_score, read_questions
from qa.retrieve import reciprocal_rank_fusion
from qa.squad import SQUAD_DIR

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=1000, help="questions for the span-ranking comparison")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "ranking.json"))
    args = parser.parse_args()
    questions, documents = read_questions(SQUAD_DIR / "dev-v1.1.json.gz")
    bot = QA(index_dir=tempfile.mkdtemp(prefix="ranking-"), corpus=[])
    bot.add_documents(documents)
    index, retriever = bot.index, bot.retriever
    results: dict = {"questions": len(questions), "chunks": len(index.chunks)}

    texts = [q.question for q in questions]
    dense = index.search_dense(retriever.embedder.embed_questions(texts), retriever.config.candidates)
    lexical = index.search_bm25(texts, retriever.config.candidates)
    for first in ("lexical", "dense"):
        hits = {1: 0, 2: 0, 4: 0}
        for q, dense_hits, lexical_hits in zip(questions, dense, lexical):
            rankings = [[i for i, _ in lexical_hits], [i for i, _ in dense_hits]]
            fused = reciprocal_rank_fusion(rankings if first == "lexical" else rankings[::-1], retriever.config.rrf_k)
            rank = _first_holding_gold([index.chunks[i].text for i, _ in fused[:4]], q.answers)
            for k in hits:
                hits[k] += 0 < rank <= k
        results[f"ties_to_{first}_order"] = {f"gold_in_first_{k}": round(100 * n / len(questions), 2)
                                             for k, n in hits.items()}
        print(first, results[f"ties_to_{first}_order"], flush=True)

    sample = random.Random(0).sample(questions, args.sample)
    f1 = {"margin": 0.0, "raw_score": 0.0}
    retrieved = retriever.run(index, [q.question for q in sample])
    for q, chunks in tqdm(list(zip(sample, retrieved)), desc="read", unit="question"):
        reading = bot.reader.run(q.question, [h.chunk.text for h in chunks])
        for rule, key in (("margin", lambda s: s.margin), ("raw_score", lambda s: s.score)):
            best = max(reading.spans, key=key, default=None)
            text = best.text if best is not None and best.confidence >= bot.config.threshold else ""
            f1[rule] += f1_score(text, q.answers)
    results["span_ranking_f1"] = {rule: round(100 * total / len(sample), 2) for rule, total in f1.items()}
    results["span_ranking_questions"] = len(sample)
    print(json.dumps(results, indent=1))
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
