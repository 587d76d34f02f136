"""Quick speed check of the shipped setup, no pipeline baseline: 256-token window (int8 vs fp32, batch 1) and
seed ask() with the default reading (top chunks first) and with every chunk read at once, in turns.

    python bench/quick_speed.py       # writes bench/results/quick_speed.json
"""

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from reader import window_latency  # noqa: E402

from qa import QA  # noqa: E402
from qa.config import SHIPPED_READER  # noqa: E402
from qa.evaluate import f1_score  # noqa: E402
from qa.read import Reader  # noqa: E402

results = {"window_256_batch_1_int8_ms": round(window_latency(Reader(str(SHIPPED_READER), quantize=True)), 2),
           "window_256_batch_1_fp32_ms": round(window_latency(Reader(str(SHIPPED_READER), quantize=False)), 2)}
results["fp32_over_int8"] = round(results["window_256_batch_1_fp32_ms"] / results["window_256_batch_1_int8_ms"], 2)
bot = QA(index_dir=tempfile.mkdtemp())
rows = [json.loads(line) for line in (ROOT / "seeds" / "questions.jsonl").read_text().splitlines()]
questions = [row["question"] for row in rows]
bot.ask(questions[0])
# The default reads the top chunks first and the rest only when unsettled (Config.read_first); "all at once"
# reads every top_k chunk. Both are timed in turns on the same questions, and scored against the gold answers.
cascade = bot.config.read_first
latencies: dict[str, list[float]] = {"default": [], "all_at_once": []}
answers: dict[str, list[str]] = {"default": [], "all_at_once": []}
for round_ in range(2):
    for question in questions:
        for label, read_first in (("default", cascade), ("all_at_once", 0)):
            bot.config.read_first = read_first
            started = time.perf_counter()
            answer = bot.ask(question)
            latencies[label].append((time.perf_counter() - started) * 1000)
            if round_ == 0:
                answers[label].append(answer.text if answer.found else "")
bot.config.read_first = cascade
for label, values in latencies.items():
    values.sort()
    suffix = "" if label == "default" else "_all_at_once"
    results[f"seed_ask_p50_ms{suffix}"] = round(statistics.median(values), 1)
    results[f"seed_ask_p95_ms{suffix}"] = round(values[int(0.95 * len(values))], 1)
    results[f"seed_f1{suffix}"] = round(100 * sum(f1_score(a, row["answers"]) for a, row in zip(answers[label], rows))
                                        / len(rows), 2)
started = time.perf_counter()
bot.ask_many(questions)
results["seed_ask_many_questions_per_s"] = round(len(questions) / (time.perf_counter() - started), 1)
print(json.dumps(results, indent=1))
(ROOT / "bench" / "results" / "quick_speed.json").write_text(json.dumps(results, indent=1))
