"""Speed on a plain CPU, side by side with the Hugging Face question-answering pipeline, in one process.

    make bench-speed        (or: .venv-bench/bin/python bench/speed.py)

The pipeline baseline needs transformers 5.2 (5.3 and later have no "question-answering" pipeline), so this
runs in its own environment (.venv-bench, made by `make bench-speed`). Both sides use the same reader weights
over the same retrieved chunks; ours is the product's default path (pre-tokenised chunks, batched windows, ONNX Runtime
int8 dynamic quantisation), the pipeline is called as its documentation shows.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from qa import QA
from qa.evaluate import EvalQuestion, f1_score, read_questions
from qa.squad import SQUAD_DIR

ROOT = Path(__file__).resolve().parent.parent


def percentile(values, q) -> float:
    return round(float(np.percentile(values, q)), 2)


def pipeline_answers(qa_pipeline, question: str, chunks: list[str]) -> str:
    """Best answer over the chunks as a pipeline user would take it: the highest-scoring non-empty answer, ""
    when every chunk's answer is empty (the pipeline's no-answer). Taking the top score over empty answers too
    would let any chunk without the answer veto the one with it."""
    outputs = qa_pipeline(question=[question] * len(chunks), context=chunks, handle_impossible_answer=True,
                          max_seq_len=256, doc_stride=96, max_answer_len=30)
    if isinstance(outputs, dict):
        outputs = [outputs]
    found = [o for o in outputs if o["answer"].strip()]
    return max(found, key=lambda o: o["score"])["answer"].strip() if found else ""


def measure(bot: QA, qa_pipeline, questions: list[EvalQuestion], label: str) -> dict:
    texts = [q.question for q in questions]
    bot.ask(texts[0])  # warm up
    ask_ms, ours = [], []
    for q in texts:
        started = time.perf_counter()
        answer = bot.ask(q)
        ask_ms.append((time.perf_counter() - started) * 1000)
        ours.append(answer.text if answer.found else "")
    started = time.perf_counter()
    bot.ask_many(texts)
    many_seconds = time.perf_counter() - started

    # The same retrieved chunks for both readers.
    retrieved, retrieve_ms = [], []
    for q in texts:
        started = time.perf_counter()
        hits = bot.retriever.run(bot.index, [q])[0]
        retrieve_ms.append((time.perf_counter() - started) * 1000)
        retrieved.append([h.chunk.text for h in hits])
    reader_ms, pipe_ms, theirs = [], [], []
    for q, chunks in zip(texts, retrieved):
        started = time.perf_counter()
        bot.reader.run(q, chunks)
        reader_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        theirs.append(pipeline_answers(qa_pipeline, q, chunks))
        pipe_ms.append((time.perf_counter() - started) * 1000)
    pipeline_end_to_end = [r + p for r, p in zip(retrieve_ms, pipe_ms)]
    golds = [q.answers for q in questions]
    result = {
        "questions": len(texts),
        "ask_p50_ms": percentile(ask_ms, 50), "ask_p95_ms": percentile(ask_ms, 95),
        "ask_many_questions_per_s": round(len(texts) / many_seconds, 1),
        "reader_stage_p50_ms": percentile(reader_ms, 50),
        "pipeline_reader_stage_p50_ms": percentile(pipe_ms, 50),
        "pipeline_end_to_end_p50_ms": percentile(pipeline_end_to_end, 50),
        "pipeline_end_to_end_p95_ms": percentile(pipeline_end_to_end, 95),
        "speedup_end_to_end_p50": round(statistics.median(pipeline_end_to_end) / statistics.median(ask_ms), 2),
        "speedup_reader_stage_p50": round(statistics.median(pipe_ms) / statistics.median(reader_ms), 2),
        "f1_ours": round(100 * np.mean([f1_score(p, g) for p, g in zip(ours, golds)]), 2),
        "f1_pipeline": round(100 * np.mean([f1_score(p, g) for p, g in zip(theirs, golds)]), 2),
    }
    print(f"{label}: " + json.dumps(result), flush=True)
    return result


def cold_start(index_dir: str) -> float:
    """Seconds from process start to the first answer, over an index that already exists."""
    code = ("import time, sys; t0 = float(sys.argv[1]); from qa import QA; "
            f"a = QA(index_dir={index_dir!r}).ask('Who chaired the session?'); "
            "print(time.time() - t0, a.text)")
    output = subprocess.run([sys.executable, "-c", code, repr(time.time())], capture_output=True, text=True,
                            check=True, cwd=ROOT).stdout.split()
    return round(float(output[0]), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--squad-sample", type=int, default=500)
    parser.add_argument("--smoke", action="store_true", help="tiny run to check the script works")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "speed.json"))
    args = parser.parse_args()
    import torch
    import transformers
    from transformers import pipeline

    results = {"torch": torch.__version__, "transformers": transformers.__version__, "threads": torch.get_num_threads(),
               "date": time.strftime("%Y-%m-%d")}
    seed_index = tempfile.mkdtemp(prefix="speed-seed-")
    bot = QA(index_dir=seed_index)
    qa_pipeline = pipeline("question-answering", model=bot.config.reader, tokenizer=bot.config.reader, device="cpu")
    seed_questions, _ = read_questions(ROOT / "seeds" / "questions.jsonl")
    if args.smoke:
        seed_questions = seed_questions[:4]
    results["seed"] = measure(bot, qa_pipeline, seed_questions, "seed questions")

    # SQuAD dev: the 2,067 paragraphs as the corpus, 500 sampled questions.
    questions, documents = read_questions(SQUAD_DIR / "dev-v1.1.json.gz")
    if args.smoke:
        documents = documents[:20]
        questions = questions[:60]
    squad_index = tempfile.mkdtemp(prefix="speed-squad-")
    squad_bot = QA(index_dir=squad_index, corpus=[])
    started = time.perf_counter()
    squad_bot.add_documents(documents)
    build = time.perf_counter() - started
    results["squad_index_build"] = {"paragraphs": len(documents), "chunks": len(squad_bot.index.chunks),
                                    "seconds": round(build, 2), "chunks_per_s": round(len(squad_bot.index.chunks) / build, 1)}
    print("index build: " + json.dumps(results["squad_index_build"]), flush=True)
    sample = random.Random(0).sample(questions, args.squad_sample)
    results["squad_500"] = measure(squad_bot, qa_pipeline, sample, "SQuAD dev sample")
    results["peak_memory_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    results["cold_start_seconds"] = cold_start(seed_index)
    print(json.dumps(results, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
