"""Load test: 20 chat clients asking for 60 s against the real server on 127.0.0.1, while another uploads.

    .venv/bin/python bench/load.py [--clients 20] [--seconds 60]
    .venv/bin/python bench/load.py --store postgresql --servers 2   # two app processes on one PostgreSQL (a
                                                                    # private pgserver), clients spread over both

With several servers, uploads go to the first and questions to all; at the end the last uploaded note is asked
of the last server, which must answer it from the shared index.

Every request must succeed (exit status 1 otherwise). Prints and writes p50/p95 latency and throughput.
Traffic goes only to the loopback address of a server this script starts and stops itself.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [json.loads(line)["question"] for line in (ROOT / "seeds" / "questions.jsonl").read_text().splitlines()]


def start_server(folder: Path, store: str = "", number: int = 0) -> tuple[subprocess.Popen, str]:
    corpus = folder / "corpus"
    corpus.mkdir(exist_ok=True)
    for file in (ROOT / "seeds").glob("*.txt"):
        shutil.copy(file, corpus / file.name)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_path = folder / f"server-{number}.log"
    log = open(log_path, "w")
    process = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), "--corpus", str(corpus),
                                "--index", str(folder / "index")] + (["--store", store] if store else []),
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(480):
        if process.poll() is not None:
            raise RuntimeError(log_path.read_text()[-3000:])
        try:
            urllib.request.urlopen(url, timeout=2)
            return process, url
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("server did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--store", default="embedded", help="embedded, or postgresql (a private pgserver)")
    parser.add_argument("--servers", type=int, default=1, help="app processes sharing the store (PostgreSQL only)")
    parser.add_argument("--out", default="", help="default: bench/results/load.json, or load_postgresql.json")
    args = parser.parse_args()
    from gradio_client import Client, handle_file

    if args.servers > 1 and args.store != "postgresql":
        parser.error("several servers share one index only with --store postgresql")
    folder = Path(tempfile.mkdtemp(prefix="qa-load-"))
    database, store = None, ""
    if args.store == "postgresql":
        import pgserver

        database = pgserver.get_server(folder / "pgdata", cleanup_mode="stop")
        store = database.get_uri()
    servers = [start_server(folder, store, 0)]  # the first builds the index; the others then open it
    servers += [start_server(folder, store, n) for n in range(1, args.servers)]
    processes, urls = [p for p, _ in servers], [u for _, u in servers]
    url = urls[0]
    latencies: list[float] = []
    errors: list[str] = []
    uploads: list[str] = []
    lock = threading.Lock()
    stop_at = time.time() + args.seconds

    def chat_client(number: int) -> None:
        rng = random.Random(number)
        client = Client(urls[number % len(urls)], verbose=False)
        while time.time() < stop_at:
            question = rng.choice(QUESTIONS)
            started = time.perf_counter()
            try:
                result = client.predict(question, api_name="/ask")
                ok = isinstance(result, dict) and "text" in result and "error" not in result
                problem = None if ok else f"bad reply {result!r}"[:300]
            except Exception as error:  # noqa: BLE001 - every failure is counted and reported
                problem = f"{type(error).__name__}: {error}"[:300]
            with lock:
                latencies.append((time.perf_counter() - started) * 1000)
                if problem:
                    errors.append(problem)

    def uploader() -> None:
        client = Client(url, verbose=False)
        number = 0
        while time.time() < stop_at - 2:
            number += 1
            path = folder / f"note-{number:03d}.txt"
            path.write_text(f"Load note {number}: the courier code for day {number} is K{number * 37 % 1000}. "
                            + "Filler sentence about logistics. " * 200)
            try:
                status, *_ = client.predict([handle_file(str(path))], api_name="/upload")
                if "added" not in status:
                    raise RuntimeError(status)
                with lock:
                    uploads.append(path.name)
            except Exception as error:  # noqa: BLE001
                with lock:
                    errors.append(f"upload: {type(error).__name__}: {error}"[:300])
            time.sleep(2)

    try:
        threads = [threading.Thread(target=chat_client, args=(i,)) for i in range(args.clients)]
        threads.append(threading.Thread(target=uploader))
        started = time.time()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.time() - started
        shared = shared_index_check(Client(urls[-1], verbose=False), uploads) if len(urls) > 1 else None
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
        if database is not None:
            database.cleanup()
    result = {
        "store": args.store, "servers": args.servers, "shared_index_answer": shared,
        "clients": args.clients, "seconds": round(elapsed, 1), "questions": len(latencies), "errors": len(errors),
        "uploads": len(uploads), "questions_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)), 1) if latencies else None,
        "p95_ms": round(float(np.percentile(latencies, 95)), 1) if latencies else None,
        "first_errors": errors[:5],
    }
    print(json.dumps(result, indent=1))
    out = Path(args.out or ROOT / "bench" / "results" / ("load.json" if args.store == "embedded" else
                                                          f"load_{args.store}.json"))
    out.write_text(json.dumps(result, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    return 0 if not errors and latencies and uploads and shared is not False else 1


def shared_index_check(client, uploads: list[str]) -> bool:
    """The last server answers a question about the last note uploaded to the first one."""
    number = int(uploads[-1].split("-")[1].split(".")[0])
    reply = client.predict(f"What is the courier code for day {number}?", api_name="/ask")
    return f"K{number * 37 % 1000}" in reply.get("text", "")


if __name__ == "__main__":
    sys.exit(main())
