"""Quick speed check of the shipped setup, no pipeline baseline: the reader's 256-token window per variant
(batch 1) and seed ask() latency with ONNX Runtime (the default where installed) and with PyTorch, in turns.

    python bench/quick_speed.py       # writes bench/results/quick_speed.json
"""

import json
import statistics
import tempfile
import time
from pathlib import Path

from qa import QA
from qa.config import SHIPPED_READER
from qa.evaluate import f1_score, window_latencies
from qa.read import Reader

ROOT = Path(__file__).resolve().parent.parent


reader = str(SHIPPED_READER)
windows = window_latencies({"onnx_int8": Reader(reader, quantize=True, runtime="onnx"),
                            "torch_int8": Reader(reader, quantize=True, runtime="torch"),
                            "fp32": Reader(reader, quantize=False, runtime="torch")})
results: dict = {"window_256_batch_1_ms": {name: round(ms, 2) for name, ms in windows.items()}}
results["window_fp32_over_onnx_int8"] = round(windows["fp32"] / windows["onnx_int8"], 2)
rows = [json.loads(line) for line in (ROOT / "seeds" / "questions.jsonl").read_text().splitlines()]
questions = [row["question"] for row in rows]
# Each runtime gets its own index (the embedder's runtime and precision are part of an index's identity).
bots = {runtime: QA(index_dir=tempfile.mkdtemp(), runtime=runtime) for runtime in ("onnx", "torch")}
for bot in bots.values():
    bot.ask(questions[0])
latencies: dict[str, list[float]] = {name: [] for name in bots}
answers: dict[str, list[str]] = {name: [] for name in bots}
for round_ in range(3):
    for question in questions:
        for name, bot in bots.items():  # in turns, so that drift of the VM falls on both alike
            started = time.perf_counter()
            answer = bot.ask(question)
            latencies[name].append((time.perf_counter() - started) * 1000)
            if round_ == 0:
                answers[name].append(answer.text if answer.found else "")
for name, values in latencies.items():
    values.sort()
    results[f"seed_ask_{name}"] = {
        "embedder": bots[name].embedder.name(), "p50_ms": round(statistics.median(values), 1),
        "p95_ms": round(values[int(0.95 * len(values))], 1),
        "f1": round(100 * sum(f1_score(a, row["answers"]) for a, row in zip(answers[name], rows)) / len(rows), 2)}
    started = time.perf_counter()
    bots[name].ask_many(questions)
    results[f"seed_ask_{name}"]["ask_many_questions_per_s"] = round(len(questions) / (time.perf_counter() - started), 1)
print(json.dumps(results, indent=1))
(ROOT / "bench" / "results" / "quick_speed.json").write_text(json.dumps(results, indent=1))
