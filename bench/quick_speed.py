"""Quick speed check of the shipped setup, no baseline: 256-token window (int8 vs fp32, batch 1) and seed ask().

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
from qa.read import Reader  # noqa: E402

results = {"window_256_batch_1_int8_ms": round(window_latency(Reader(str(SHIPPED_READER), quantize=True)), 2),
           "window_256_batch_1_fp32_ms": round(window_latency(Reader(str(SHIPPED_READER), quantize=False)), 2)}
results["fp32_over_int8"] = round(results["window_256_batch_1_fp32_ms"] / results["window_256_batch_1_int8_ms"], 2)
bot = QA(index_dir=tempfile.mkdtemp())
questions = [json.loads(line)["question"] for line in (ROOT / "seeds" / "questions.jsonl").read_text().splitlines()]
bot.ask(questions[0])
latencies = []
for question in questions * 2:
    started = time.perf_counter()
    bot.ask(question)
    latencies.append((time.perf_counter() - started) * 1000)
latencies.sort()
results["seed_ask_p50_ms"] = round(statistics.median(latencies), 1)
results["seed_ask_p95_ms"] = round(latencies[int(0.95 * len(latencies))], 1)
started = time.perf_counter()
bot.ask_many(questions)
results["seed_ask_many_questions_per_s"] = round(len(questions) / (time.perf_counter() - started), 1)
print(json.dumps(results, indent=1))
(ROOT / "bench" / "results" / "quick_speed.json").write_text(json.dumps(results, indent=1))
