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
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT.parent / "shared" / "data" / "squad" / "train-v1.1.json.gz"
SMALL_DOCUMENT = ("The Zorblat Institute of Marine Acoustics was founded in 1911 by Mira Kestrel, a lighthouse keeper "
                  "who recorded whale songs on wax cylinders. It moved to Halifax in 1954.")
SMALL_QUESTION = "Who founded the Zorblat Institute of Marine Acoustics?"
SMALL_ANSWER = "Mira Kestrel"


def peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def write_corpus(folder: Path, articles: int) -> list[str]:
    """One .txt file per article (its paragraphs separated by blank lines); returns questions about them."""
    import gzip

    with gzip.open(TRAIN, "rt", encoding="utf-8") as handle:
        data = json.load(handle)["data"][:articles]
    questions = []
    for n, article in enumerate(data):
        paragraphs = [p["context"] for p in article["paragraphs"]]
        (folder / f"{n:03d}_{article['title'][:60]}.txt").write_text("\n\n".join(paragraphs), encoding="utf-8")
        questions.extend(q["question"] for q in article["paragraphs"][0]["qas"][:2])
    return questions


def phase_build(corpus: str, index_dir: str, store: str) -> dict:
    sys.path.insert(0, str(ROOT))
    from qa import QA

    started = time.perf_counter()
    bot = QA.from_paths([corpus], index_dir=index_dir, store=store)
    seconds = time.perf_counter() - started
    chunks = len(bot.index.chunks)
    return {"chunks": chunks, "documents": len(bot.index.documents), "build_seconds": round(seconds, 1),
            "chunks_per_second": round(chunks / seconds, 1), "build_peak_memory_mb": peak_mb()}


def phase_reopen(corpus: str, index_dir: str, store: str, questions: list[str], process_start: float) -> dict:
    sys.path.insert(0, str(ROOT))
    from qa import QA

    bot = QA.from_paths([corpus], index_dir=index_dir, store=store)
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


def child(phase: str, corpus: Path, index_dir: Path, store: str, questions: list[str]) -> dict:
    process_start = time.time()
    command = [sys.executable, __file__, "--phase", phase, "--corpus", str(corpus), "--index-dir", str(index_dir),
               "--store", store, "--process-start", repr(process_start)]
    output = subprocess.run(command, input=json.dumps(questions), capture_output=True, text=True)
    if output.returncode != 0:
        raise SystemExit(f"{phase} failed:\n{output.stderr[-3000:]}")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=44)
    parser.add_argument("--label", default="", help="a name for this run in the results (e.g. a commit)")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "scale.json"))
    parser.add_argument("--keep", default="", help="build in this folder and keep it (corpus/ and index/)")
    parser.add_argument("--store", default="embedded",
                        help="embedded (default), postgresql (a private pgserver) or a postgresql:// URL")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--index-dir", help=argparse.SUPPRESS)
    parser.add_argument("--process-start", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        questions = json.loads(sys.stdin.read())
        result = phase_build(args.corpus, args.index_dir, args.store) if args.phase == "build" else \
            phase_reopen(args.corpus, args.index_dir, args.store, questions, args.process_start)
        print(json.dumps(result))
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
        result.update(child("build", corpus, index_dir, store, questions))
        result["index_disk_mb"] = disk_mb(index_dir, store)
        result.update(child("reopen", corpus, index_dir, store, questions))
        result["index_disk_mb_after_changes"] = disk_mb(index_dir, store)
    print(json.dumps(result, indent=1))
    output = Path(args.output)
    saved = json.loads(output.read_text()) if output.exists() else {}
    saved[f"{args.articles} articles" + (", postgresql" if store else "") + (f", {args.label}" if args.label else "")] \
        = result
    output.write_text(json.dumps(saved, indent=1) + "\n")


if __name__ == "__main__":
    main()
