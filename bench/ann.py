"""Exact against approximate (HNSW) dense search: recall@10 and time per question, to choose HNSW_MIN_ROWS.

    python bench/ann.py --index-dir DIR [--questions 500]     # real vectors: an index bench/scale.py built
    python bench/ann.py --synthetic 200000                       # random unit vectors (time; recall is a floor)

Real queries are SQuAD v1.1 train questions embedded by the product's embedder. HNSW settings are the
product's (M 32, efConstruction 80, efSearch qa.index.HNSW_EF_SEARCH). Results: bench/results/ann.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.durable import save_array, save_graph  # noqa: E402
from qa.index import HNSW_EF_SEARCH  # noqa: E402

TRAIN = ROOT.parent / "shared" / "data" / "squad" / "train-v1.1.json.gz"


def real_data(index_dir: Path, count: int) -> tuple[np.ndarray, np.ndarray]:
    vectors = np.concatenate([np.load(p) for p in sorted((index_dir / "segments").glob("seg-*[0-9].npy"))])
    from qa.config import Config
    from qa.embed import Embedder

    cfg = Config()
    embedder = Embedder(cfg.embedder_path(), precision=cfg.embed_precision, runtime=cfg.runtime,
                        max_tokens=cfg.embed_max_tokens)
    with gzip.open(TRAIN, "rt", encoding="utf-8") as handle:
        articles = json.load(handle)["data"][:442]
    questions = [q["question"] for a in articles for p in a["paragraphs"][:2] for q in p["qas"][:1]]
    rng = np.random.default_rng(0)
    chosen = [questions[i] for i in rng.choice(len(questions), min(count, len(questions)), replace=False)]
    return vectors, np.ascontiguousarray(embedder.embed_questions(chosen), dtype=np.float32)


def synthetic_data(rows: int, count: int, dimension: int = 384) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((rows, dimension), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[rng.choice(rows, count, replace=False)] + 0.5 * rng.standard_normal((count, dimension),
                                                                                           dtype=np.float32)
    return vectors, np.ascontiguousarray(queries / np.linalg.norm(queries, axis=1, keepdims=True))


def measure(vectors: np.ndarray, queries: np.ndarray, graph_too: bool = True) -> dict:
    import faiss

    with tempfile.TemporaryDirectory() as folder:
        save_array(Path(folder) / "v.npy", vectors)
        mapped = np.load(Path(folder) / "v.npy", mmap_mode="r")
        started = time.perf_counter()
        if graph_too:
            save_graph(Path(folder) / "v.hnsw", vectors)
            graph = faiss.read_index(str(Path(folder) / "v.hnsw"))
            graph.hnsw.efSearch = HNSW_EF_SEARCH
        build = time.perf_counter() - started
        faiss.omp_set_num_threads(1)  # one question at a time, as ask() searches; the build used every core
        exact_ms, approx_ms, recalls = [], [], []
        for query in queries:
            q = query[None, :]
            started = time.perf_counter()
            _, exact = faiss.knn(q, mapped, 10, metric=faiss.METRIC_INNER_PRODUCT)
            exact_ms.append((time.perf_counter() - started) * 1000)
            if graph_too:
                started = time.perf_counter()
                _, approx = graph.search(q, 10)
                approx_ms.append((time.perf_counter() - started) * 1000)
                recalls.append(len(set(exact[0]) & set(approx[0])) / 10)
    result = {"rows": len(vectors), "questions": len(queries), "exact_p50_ms": round(statistics.median(exact_ms), 2)}
    if graph_too:
        result.update({"recall@10": round(float(np.mean(recalls)), 4), "hnsw_p50_ms": round(statistics.median(approx_ms), 3),
                       "hnsw_build_seconds": round(build, 1), "ef_search": HNSW_EF_SEARCH})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index-dir", help="an index folder with real vectors")
    parser.add_argument("--synthetic", type=int, default=0, help="rows of random unit vectors instead")
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--exact-only", action="store_true", help="time exact search only (no HNSW build)")
    args = parser.parse_args()
    if args.index_dir:
        key, (vectors, queries) = "real", real_data(Path(args.index_dir), args.questions)
    else:
        key, (vectors, queries) = "synthetic", synthetic_data(args.synthetic, args.questions)
    result = measure(vectors, queries, graph_too=not args.exact_only)
    print(json.dumps(result, indent=1))
    output = ROOT / "bench" / "results" / "ann.json"
    saved = json.loads(output.read_text()) if output.exists() else {}
    saved[f"{key} {len(vectors)}" + (" exact only" if args.exact_only else "")] = result
    output.write_text(json.dumps(saved, indent=1) + "\n")


if __name__ == "__main__":
    main()
