"""Load test: 20 chat clients asking for 60 s against the real server on 127.0.0.1, while another uploads.

    .venv/bin/python bench/load.py [--clients 20] [--seconds 60]

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


def start_server(folder: Path) -> tuple[subprocess.Popen, str]:
    corpus = folder / "corpus"
    corpus.mkdir()
    for file in (ROOT / "seeds").glob("*.txt"):
        shutil.copy(file, corpus / file.name)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(folder / "server.log", "w")
    process = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), "--corpus", str(corpus),
                                "--index", str(folder / "index")], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(480):
        if process.poll() is not None:
            raise RuntimeError((folder / "server.log").read_text()[-3000:])
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
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "load.json"))
    args = parser.parse_args()
    from gradio_client import Client, handle_file

    folder = Path(tempfile.mkdtemp(prefix="qa-load-"))
    process, url = start_server(folder)
    latencies: list[float] = []
    errors: list[str] = []
    uploads: list[str] = []
    lock = threading.Lock()
    stop_at = time.time() + args.seconds

    def chat_client(number: int) -> None:
        rng = random.Random(number)
        client = Client(url, verbose=False)
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
    finally:
        process.terminate()
        process.wait(timeout=30)
    result = {
        "clients": args.clients, "seconds": round(elapsed, 1), "questions": len(latencies), "errors": len(errors),
        "uploads": len(uploads), "questions_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)), 1) if latencies else None,
        "p95_ms": round(float(np.percentile(latencies, 95)), 1) if latencies else None,
        "first_errors": errors[:5],
    }
    print(json.dumps(result, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    return 0 if not errors and latencies and uploads else 1


if __name__ == "__main__":
    sys.exit(main())
