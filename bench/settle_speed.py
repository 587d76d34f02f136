"""Latency against quality for two-step reading: seed and SQuAD-dev ask() p50 and F1 per `settle_confidence`
(the confidence at which the top two chunks settle a question, so that the other two are not read).

    python bench/settle_speed.py [SETTLE ...]    # default 0.5 0.35 0.25; writes bench/results/settle_speed.json

The settings take turns on every question, so the VM's drift falls on all alike.
"""

import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from qa import QA
from qa.evaluate import f1_score, read_questions
from qa.squad import SQUAD_DIR

ROOT = Path(__file__).resolve().parent.parent


SETTLES = tuple(float(a) for a in sys.argv[1:]) or (0.5, 0.35, 0.25)
seed_rows = [json.loads(line) for line in (ROOT / "seeds" / "questions.jsonl").read_text().splitlines()]
seed_bot = QA(index_dir=tempfile.mkdtemp())
questions, documents = read_questions(SQUAD_DIR / "dev-v1.1.json.gz")
squad_bot = QA(index_dir=tempfile.mkdtemp(), corpus=[])
squad_bot.add_documents(documents)
sets = {"seed": (seed_bot, [(r["question"], r["answers"]) for r in seed_rows] * 2),
        "squad_300": (squad_bot, [(q.question, q.answers) for q in random.Random(0).sample(questions, 300)])}
seed_bot.ask(seed_rows[0]["question"])
results: dict = {}
for name, (bot, items) in sets.items():
    times: dict[float, list[float]] = {s: [] for s in SETTLES}
    scores: dict[float, list[float]] = {s: [] for s in SETTLES}
    for question, answers in items:
        for settle in SETTLES:
            bot.config.settle_confidence = settle
            started = time.perf_counter()
            answer = bot.ask(question)
            times[settle].append((time.perf_counter() - started) * 1000)
            scores[settle].append(f1_score(answer.text if answer.found else "", answers))
    results[name] = {str(s): {"p50_ms": round(statistics.median(times[s]), 1),
                              "f1": round(100 * sum(scores[s]) / len(scores[s]), 2)} for s in SETTLES}
    print(name, json.dumps(results[name]), flush=True)
(ROOT / "bench" / "results" / "settle_speed.json").write_text(json.dumps(results, indent=1))
