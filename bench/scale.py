"""How the embedded index scales: SQuAD v1.1 train articles as .txt files, measured through `QA.from_paths`.

    python bench/scale.py --articles 44      # about 2,500 chunks
    nice -n 10 python bench/scale.py --articles 442    # about 25,000 chunks (the build takes minutes)
    python bench/scale.py --articles 44 --store postgresql    # the same, the index in PostgreSQL (a private
                                                              # pgserver); or --store postgresql://user@host/db

Each phase runs in a fresh process, so start-up and peak memory are what a user sees:
  build    the corpus written as one .txt file per article, indexed from nothing;
  reopen   process start to the first answer over the unchanged corpus; then one small document added and a
           question answered from it, the document removed and the question asked again; ask() p50 over SQuAD
           questions of those articles.
Results go to bench/results/scale.json, keyed by the number of articles.

The million-chunk mode builds the index through the store itself, from the 442 articles' real chunks repeated
(each copy's document ids made unique) with synthetic vectors, since embedding a million chunks takes hours here:

    nice -n 10 python bench/scale.py --chunks 1000000 --synthetic --keep /tmp/scale1m

  base          the 442 articles indexed as above, in KEEP/base (reused when there), for real chunks and vectors;
  million-build copies committed to KEEP/million through IndexStore.commit, --batch chunks a commit, merges in
                the background; the build ends when the last merge is committed;
  reopen        as above, over that folder with an empty corpus list;
  recall        recall@10 of the index's search (HNSW graphs on large segments) against exact search by
                faiss.knn over the same rows, 200 real SQuAD train questions.
Results go under "<chunks> chunks, synthetic vectors".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT.parent / "shared" / "data" / "squad" / "train-v1.1.json.gz"
SMALL_DOCUMENT = ("The Zorblat Institute of Marine Acoustics was founded in 1911 by Mira Kestrel, a lighthouse keeper "
                  "who recorded whale songs on wax cylinders. It moved to Halifax in 1954.")
SMALL_QUESTION = "Who founded the Zorblat Institute of Marine Acoustics?"
SMALL_ANSWER = "Mira Kestrel"


def peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def load_articles(articles: int) -> list[dict]:
    import gzip

    with gzip.open(TRAIN, "rt", encoding="utf-8") as handle:
        return json.load(handle)["data"][:articles]


def write_corpus(folder: Path, articles: int) -> list[str]:
    """One .txt file per article (its paragraphs separated by blank lines); returns questions about them."""
    data = load_articles(articles)
    questions = []
    for n, article in enumerate(data):
        paragraphs = [p["context"] for p in article["paragraphs"]]
        (folder / f"{n:03d}_{article['title'][:60]}.txt").write_text("\n\n".join(paragraphs), encoding="utf-8")
        questions.extend(q["question"] for q in article["paragraphs"][0]["qas"][:2])
    return questions


def phase_build(corpus: str, index_dir: str, store: str = "") -> dict:
    sys.path.insert(0, str(ROOT))
    from qa import QA

    started = time.perf_counter()
    bot = QA.from_paths([corpus], index_dir=index_dir, store=store)
    seconds = time.perf_counter() - started
    chunks = len(bot.index.chunks)
    return {"chunks": chunks, "documents": len(bot.index.documents), "build_seconds": round(seconds, 1),
            "chunks_per_second": round(chunks / seconds, 1), "build_peak_memory_mb": peak_mb()}


def phase_reopen(corpus: str, index_dir: str, questions: list[str], process_start: float, store: str = "") -> dict:
    sys.path.insert(0, str(ROOT))
    from qa import QA

    bot = QA.from_paths([corpus] if corpus else [], index_dir=index_dir, store=store)
    opened = time.time()
    first = bot.ask(questions[0])
    result = {"open_seconds": round(opened - process_start, 2),
              "start_to_first_answer_seconds": round(time.time() - process_start, 2),
              "first_answer": first.text}
    started = time.perf_counter()
    bot.add_bytes("zorblat.txt", SMALL_DOCUMENT.encode())
    added = time.perf_counter()
    answer = bot.ask(SMALL_QUESTION)
    result.update(add_seconds=round(added - started, 3), add_then_answer_seconds=round(time.perf_counter() - started, 3),
                  added_answer=answer.text, added_answer_correct=SMALL_ANSWER in answer.text)
    started = time.perf_counter()
    bot.remove("zorblat.txt")
    removed = time.perf_counter()
    answer = bot.ask(SMALL_QUESTION)
    result.update(remove_seconds=round(removed - started, 3),
                  remove_then_answer_seconds=round(time.perf_counter() - started, 3),
                  removed_gone=SMALL_ANSWER not in answer.text)
    latencies = []
    for question in questions[1:61]:
        started = time.perf_counter()
        bot.ask(question)
        latencies.append((time.perf_counter() - started) * 1000)
    result.update(ask_p50_ms=round(statistics.median(latencies), 1), asked=len(latencies))
    index, parts = bot.index, {"dense": [], "lexical": [], "retrieve": []}
    for question in questions[1:61]:
        vector = bot.embedder.embed_questions([question])
        for part, call in (("dense", lambda: index.search_dense(vector, 20)),
                           ("lexical", lambda: index.search_bm25([question], 20)),
                           ("retrieve", lambda: bot.retriever.run(index, [question]))):
            started = time.perf_counter()
            call()
            parts[part].append((time.perf_counter() - started) * 1000)
    result.update({f"{part}_p50_ms": round(statistics.median(times), 2) for part, times in parts.items()})
    result["reopen_peak_memory_mb"] = peak_mb()
    return result


NOISE = 0.25  # each copy's vector: the real one plus Gaussian noise of about this norm, re-normalised


def synthetic_vectors(real: np.ndarray, copy: int, rng) -> np.ndarray:
    """Copy 0 keeps the real vectors; later copies get noise of norm ~NOISE (cosine ~0.97 to the real vector):
    a question's neighbourhood keeps the real structure, yet no two rows are the same point (forty exact
    duplicates of every chunk would be a degenerate case for a graph index that no real corpus presents)."""
    if copy == 0:
        return real
    noisy = real + rng.standard_normal(real.shape, dtype=np.float32) * (NOISE / np.sqrt(real.shape[1]))
    return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)


def phase_million_build(base_corpus: str, index_dir: str, plan: dict) -> dict:
    """Copies of the base index's documents and chunks, committed to a new folder plan['batch'] chunks at a
    time, until plan['chunks'] chunks; vectors from synthetic_vectors."""
    from dataclasses import replace

    sys.path.insert(0, str(ROOT))
    from qa import QA
    from qa.chunk import Chunk
    from qa.index import IndexStore

    bot = QA.from_paths([base_corpus], index_dir=plan["base"])
    numbered = bot.store.numbered_chunks()
    real = bot.index.vectors_of([n for n, _ in numbered])
    by_document: dict[str, list[int]] = {}
    for row, (_, chunk) in enumerate(numbered):
        by_document.setdefault(chunk.document, []).append(row)
    documents = [bot.index.documents[i] for i in sorted(by_document)]
    if plan.get("store"):
        from qa.postgres import PostgresStore

        store = PostgresStore(plan["store"])
    else:
        store = IndexStore(index_dir)
    rng = np.random.default_rng(0)
    merger = getattr(store, "merger", None)  # the embedded store merges in the background
    total, commits, started = 0, [], time.perf_counter()
    batch: tuple[list, list, list] = ([], [], [])
    for copy in range(plan["chunks"] // len(numbered) + 1):
        if total >= plan["chunks"]:
            break
        noisy = synthetic_vectors(real, copy, rng)
        for document in documents:
            rows = by_document[document.id]
            new = replace(document, id=f"copy{copy:02d}/{document.id}")
            batch[0].append(new)
            batch[1].extend(Chunk(f"copy{copy:02d}/{c.id}", new.id, c.start, c.end, c.text)
                            for c in (numbered[r][1] for r in rows))
            batch[2].append(noisy[rows])
            total, copies = total + len(rows), copy + 1
            if len(batch[1]) >= plan["batch"] or total >= plan["chunks"]:  # the last commit may end mid-copy
                begun = time.perf_counter()
                store.commit(bot.fingerprint, batch[0], batch[1], np.concatenate(batch[2]))
                commits.append(time.perf_counter() - begun)
                batch = ([], [], [])
                print(f"{total:,} chunks committed, {time.perf_counter() - started:.0f} s (commit "
                      f"{commits[-1]:.1f} s), merging: {merger is not None and merger.running()}", file=sys.stderr,
                      flush=True)
            if total >= plan["chunks"]:
                break
    committed = time.perf_counter() - started
    if merger is not None:
        store.wait_for_merge()
    seconds = time.perf_counter() - started
    index = store.snapshot(bot.fingerprint)
    return {"chunks": total, "documents": len(index.documents), "copies": copies, "base_chunks": len(numbered),
            "batch": plan["batch"], "commits": len(commits), "commit_seconds_max": round(max(commits), 1),
            "commits_done_seconds": round(committed, 1), "build_seconds": round(seconds, 1),
            "chunks_per_second": round(total / seconds, 1), "build_peak_memory_mb": peak_mb(),
            "segments": [[len(s.ids), s.graph is not None] for s in index.segments]}


def phase_recall(index_dir: str, questions: list[str], store: str = "") -> dict:
    """recall@10 of Index.search_dense (HNSW on large segments) against exact inner product over every row."""
    sys.path.insert(0, str(ROOT))
    from qa import QA

    bot = QA(index_dir=index_dir, corpus=[], store=store)
    if store:
        return postgres_recall(bot, questions)
    import faiss

    index = bot.index
    vectors = bot.embedder.embed_questions(questions)
    approximate, exact, times = [], [], {"approximate": [], "exact": []}
    for vector in vectors:
        started = time.perf_counter()
        approximate.append({n for n, _ in index.search_dense(vector[None], 10)[0]})
        times["approximate"].append((time.perf_counter() - started) * 1000)
        started, hits = time.perf_counter(), []
        for segment in index.segments:
            scores, rows = faiss.knn(vector[None], segment.vectors, 10 + len(index.dead),
                                     metric=faiss.METRIC_INNER_PRODUCT)
            hits += [(float(s), int(segment.ids[r])) for s, r in zip(scores[0], rows[0])
                     if r >= 0 and segment.ids[r] not in index.dead]
        times["exact"].append((time.perf_counter() - started) * 1000)
        exact.append({n for _, n in sorted(hits, reverse=True)[:10]})
    recall = statistics.mean(len(a & e) / 10 for a, e in zip(approximate, exact))
    return {"recall_at_10": round(recall, 4), "recall_questions": len(questions),
            "dense_search_p50_ms": round(statistics.median(times["approximate"]), 2),
            "exact_search_p50_ms": round(statistics.median(times["exact"]), 2)}


def postgres_recall(bot, questions: list[str]) -> dict:
    """recall@10 of pgvector's HNSW search against the same query with index scans turned off (exact)."""
    import psycopg

    from qa.postgres import DENSE, HNSW_EF_SEARCH, vector_literal

    approximate, exact, times = [], [], {"approximate": [], "exact": []}
    plans = {}
    with psycopg.connect(bot.config.store, autocommit=True) as connection:
        connection.execute(f"set hnsw.ef_search = {HNSW_EF_SEARCH}")
        for vector in bot.embedder.embed_questions(questions):
            params = {"vector": vector_literal(vector), "k": 10}
            for kind, settings in (("approximate", "on"), ("exact", "off")):
                # Not prepared: a prepared statement keeps the plan it was made with, whatever enable_indexscan says.
                connection.execute(f"set enable_indexscan = {settings}")
                plan = connection.execute("explain " + DENSE, params, prepare=False).fetchall()
                plans[kind] = re.sub(r"'\[[^\]]*\]'::vector", "'[...]'::vector",
                                     " / ".join(row[0].strip().split("  (")[0] for row in plan))
                started = time.perf_counter()
                found = {n for _, n, _ in connection.execute(DENSE, params, prepare=False).fetchall()}
                times[kind].append((time.perf_counter() - started) * 1000)
                (approximate if kind == "approximate" else exact).append(found)
    recall = statistics.mean(len(a & e) / 10 for a, e in zip(approximate, exact))
    return {"recall_at_10": round(recall, 4), "recall_questions": len(questions), "plans": plans,
            "dense_search_p50_ms": round(statistics.median(times["approximate"]), 2),
            "exact_search_p50_ms": round(statistics.median(times["exact"]), 2)}


def child(phase: str, corpus: Path | str, index_dir: Path, payload, show_progress: bool = False,
          store: str = "") -> dict:
    process_start = time.time()
    command = [sys.executable, __file__, "--phase", phase, "--corpus", str(corpus), "--index-dir", str(index_dir),
               "--process-start", repr(process_start), "--store", store]
    output = subprocess.run(command, input=json.dumps(payload), stdout=subprocess.PIPE, text=True,
                            stderr=None if show_progress else subprocess.PIPE)
    if output.returncode != 0:
        raise SystemExit(f"{phase} failed:\n{(output.stderr or '')[-3000:]}")
    return json.loads(output.stdout.strip().splitlines()[-1])


def disk_mb(folder: Path, store: str = "") -> float:
    """The index folder's size, or the database's (tables, indexes, TOAST) for the PostgreSQL store."""
    if store:
        import psycopg

        with psycopg.connect(store) as connection:
            return round(connection.execute("select pg_database_size(current_database())").fetchone()[0] / 1e6, 1)
    return round(sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6, 1)


@contextlib.contextmanager
def database(choice: str, work: Path):
    """The store URL to measure: "" (the embedded index), a URL as given, or a private pgserver in `work`."""
    if choice != "postgresql":
        yield "" if choice == "embedded" else choice
        return
    import pgserver

    server = pgserver.get_server(work / "pgdata", cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def million(args) -> tuple[str, dict]:
    """The million-chunk mode (see the module's text); returns the results' key and figures."""
    work = Path(args.keep or tempfile.mkdtemp(prefix="qa-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    base = Path(args.base) if args.base else work / "base"
    if not (base / "index" / "catalog.sqlite").exists():
        (base / "corpus").mkdir(parents=True, exist_ok=True)
        child("build", base / "corpus", base / "index", write_corpus(base / "corpus", 442), show_progress=True)
    articles = load_articles(442)
    questions = [q["question"] for a in articles for p in a["paragraphs"][:3] for q in p["qas"][:1]]
    index_dir, built = work / "million", work / "million-build.json"
    result = {"label": args.label, "vectors": f"synthetic: real embeddings of the base chunks, copies 1.. with "
                                              f"Gaussian noise of norm {NOISE}, re-normalised"}
    with database(args.store, work) as store:
        result["store"] = "postgresql" if store else "embedded"
        if built.exists():  # a kept build: measured again, its build figures as they were
            result.update(json.loads(built.read_text()), remeasured=True)
        elif index_dir.exists():
            raise SystemExit(f"{index_dir} exists: remove it or name another --keep folder")
        else:
            result.update(child("million-build", base / "corpus", index_dir,
                                {"base": str(base / "index"), "chunks": args.chunks, "batch": args.batch,
                                 "store": store}, True))
            built.write_text(json.dumps(result))
        result["index_disk_mb"] = disk_mb(index_dir, store)
        if not store:
            parts = {p: sum(f.stat().st_size for f in index_dir.rglob(p) if f.is_file())
                     for p in ("*.npy", "*.hnsw")}
            result.update(vectors_disk_mb=round(parts["*.npy"] / 1e6, 1),
                          graphs_disk_mb=round(parts["*.hnsw"] / 1e6, 1))
        result.update(child("reopen", "", index_dir, questions, store=store))
        result.update(child("recall", "", index_dir, questions[-200:], store=store))
        result["index_disk_mb_after_changes"] = disk_mb(index_dir, store)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return f"{result['chunks']} chunks, synthetic vectors" + (", postgresql" if store else "") + \
        (f", {args.label}" if args.label else ""), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=44)
    parser.add_argument("--label", default="", help="a name for this run in the results (e.g. a commit)")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "scale.json"))
    parser.add_argument("--keep", default="", help="build in this folder and keep it (corpus/ and index/)")
    parser.add_argument("--chunks", type=int, help="the million-chunk mode: this many chunks (needs --synthetic)")
    parser.add_argument("--synthetic", action="store_true", help="with --chunks: synthetic vectors")
    parser.add_argument("--batch", type=int, default=100_000, help="with --chunks: chunks a commit")
    parser.add_argument("--base", default="", help="with --chunks: a folder made by --articles 442 --keep")
    parser.add_argument("--store", default="embedded",
                        help="embedded (default), postgresql (a private pgserver) or a postgresql:// URL")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--index-dir", help=argparse.SUPPRESS)
    parser.add_argument("--process-start", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        payload = json.loads(sys.stdin.read())
        phases = {"build": lambda: phase_build(args.corpus, args.index_dir, args.store),
                  "reopen": lambda: phase_reopen(args.corpus, args.index_dir, payload, args.process_start,
                                                 args.store),
                  "million-build": lambda: phase_million_build(args.corpus, args.index_dir, payload),
                  "recall": lambda: phase_recall(args.index_dir, payload, args.store)}
        print(json.dumps(phases[args.phase]()))
        return
    if args.chunks:
        if not args.synthetic:
            raise SystemExit("--chunks needs --synthetic: embedding a million chunks takes hours here")
        key, result = million(args)
        save(Path(args.output), key, result)
        return
    with tempfile.TemporaryDirectory(prefix="qa-scale-") as work, database(args.store, Path(work)) as store:
        work = args.keep or work
        corpus, index_dir = Path(work) / "corpus", Path(work) / "index"
        corpus.mkdir(parents=True)
        questions = write_corpus(corpus, args.articles)
        result = {"articles": args.articles, "corpus_mb": disk_mb(corpus), "label": args.label,
                  "store": "postgresql" if store else "embedded"}
        if store:
            result["database_mb_empty"] = disk_mb(index_dir, store)
        result.update(child("build", corpus, index_dir, questions, store=store))
        result["index_disk_mb"] = disk_mb(index_dir, store)
        result.update(child("reopen", corpus, index_dir, questions, store=store))
        result["index_disk_mb_after_changes"] = disk_mb(index_dir, store)
    save(Path(args.output), f"{args.articles} articles" + (", postgresql" if store else "") +
         (f", {args.label}" if args.label else ""), result)


def save(output: Path, key: str, result: dict) -> None:
    print(json.dumps(result, indent=1))
    saved = json.loads(output.read_text()) if output.exists() else {}
    saved[key] = result
    output.write_text(json.dumps(saved, indent=1) + "\n")


if __name__ == "__main__":
    main()
