"""Quality and speed of a reader on its own (the gold paragraph given), with the official SQuAD metric.

    python bench/reader.py                       # the shipped reader, every data set, speed; writes JSON
    python bench/reader.py --calibrate           # also fit calibration.json on half of dev-v2.0

Data: ../shared/data/squad/ (SQuAD v1.1 dev, v2.0 dev, XQuAD-en, COVID-QA). Quality is measured with the reader
in the variant the product uses (int8 when quantised) and in fp32, so the cost of quantisation is on record.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from pathlib import Path

import torch

from qa.calibrate import article_halves, fit_abstention, v2_predictions, write_calibration
from qa.config import SHIPPED_READER
from qa.evaluate import read_gold_paragraphs, squad_scores, window_latencies
from qa.read import Reader
from qa.squad import SQUAD_DIR, read_squad

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reader", default=str(SHIPPED_READER))
    parser.add_argument("--data", default=str(SQUAD_DIR))
    parser.add_argument("--limit", type=int, default=0, help="first N questions of each set (0: all)")
    parser.add_argument("--covid-sample", type=int, default=100, help="COVID-QA questions (long papers: sampled)")
    parser.add_argument("--calibrate", action="store_true", help="fit and write calibration.json in the reader folder")
    parser.add_argument("--skip-fp32", action="store_true", help="do not re-measure quality in fp32")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "reader.json"))
    args = parser.parse_args()
    data = Path(args.data)
    results: dict = {"reader": args.reader, "machine": f"{platform.processor() or platform.machine()}, "
                     f"{torch.get_num_threads()} threads", "date": time.strftime("%Y-%m-%d")}

    from qa.runtime import resolve_runtime

    int8 = Reader(args.reader, quantize=True, runtime="torch")  # PyTorch dynamic int8
    fp32 = Reader(args.reader, quantize=False, runtime="torch")
    readers = {"int8": int8, "fp32": fp32}
    if resolve_runtime("auto") == "onnx":  # the product's default where onnxruntime is installed
        readers = {"onnx_int8": Reader(args.reader, quantize=True, runtime="onnx"), **readers}
        readers["onnx_fp32"] = Reader(args.reader, quantize=False, runtime="onnx")
    default_name = next(iter(readers))
    default = readers[default_name]
    results["default_variant"] = default_name
    calibration = default.calibration

    def save() -> None:  # after every section, so an interrupted run keeps what it measured
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1))

    # -- speed first, while the machine is fresh: one 256-token window, batch 1, every variant, this run.
    speed = {f"{name}_ms": ms for name, ms in window_latencies(readers).items()}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        speed["bf16_autocast_ms"] = window_latencies({"bf16": fp32})["bf16"]
    speed["int8_speedup_vs_fp32"] = round(speed["fp32_ms"] / speed["int8_ms"], 2)
    speed[f"{default_name}_speedup_vs_fp32"] = round(speed["fp32_ms"] / speed[f"{default_name}_ms"], 2)
    results["window_256_batch_1"] = {k: round(v, 2) for k, v in speed.items()}
    save()

    # -- SQuAD v2.0 dev: fit the calibration on one half of the articles, report on the other half and on all.
    v2 = read_squad(data / "dev-v2.0.json.gz")
    v2_questions = v2.questions[: args.limit] if args.limit else v2.questions
    v2_readings = read_gold_paragraphs(default, v2, v2_questions, label=f"dev-v2.0 {default_name}")
    fit, held, fitted_on = article_halves(v2, v2_questions)
    fitted, tuned_threshold = fit_abstention(v2_questions, v2_readings, fit)
    if args.calibrate:
        calibration = fitted
        write_calibration(args.reader, calibration, {"fitted_on": f"SQuAD v2.0 dev, {fitted_on}",
                                                     "runtime": default.runtime, "variant": default_name,
                                                     "best_threshold_on_fit_half": tuned_threshold})
    from qa.config import Config

    # SQuAD 2.0 practice: the abstention threshold is tuned for F1; here on one half, reported on both.
    tuned = v2_predictions(v2_readings, fitted, tuned_threshold)
    results["squad_v2_dev_tuned_threshold"] = {
        "threshold_fitted_on_half": tuned_threshold, **squad_scores(v2_questions, tuned),
        "held_out_half": squad_scores([v2_questions[i] for i in held], [tuned[i] for i in held])}
    rows = [{"id": q.id, "impossible": q.is_impossible, "text": r.best.text if r.best else "",
             "score": r.best.score if r.best else None, "null": r.null_score} for q, r in zip(v2_questions, v2_readings)]
    Path(args.out).with_suffix(".v2.rows.json").write_text(json.dumps(rows))  # for error analysis; git-ignored

    threshold = Config().threshold
    predictions = v2_predictions(v2_readings, calibration, threshold)
    at_half = v2_predictions(v2_readings, calibration, 0.5)
    results["squad_v2_dev_threshold_0.5"] = squad_scores(v2_questions, at_half)
    results["squad_v2_dev"] = squad_scores(v2_questions, predictions)
    results["squad_v2_dev_held_out_half"] = squad_scores([v2_questions[i] for i in held], [predictions[i] for i in held])
    results["calibration"] = {"slope": calibration.slope, "intercept": calibration.intercept, "threshold": threshold}

    save()

    # -- SQuAD v1.1 dev, XQuAD-en, COVID-QA: every question has an answer; score the best span.
    def answerable(name: str, path: Path, sample: int = 0, variants=()):
        squad = read_squad(path)
        questions = squad.questions[: args.limit] if args.limit else squad.questions
        if sample and len(questions) > sample:
            questions = random.Random(0).sample(questions, sample)
        for variant, reader in variants:
            readings = read_gold_paragraphs(reader, squad, questions, label=f"{name} {variant}")
            results[f"{name}_{variant}"] = squad_scores(questions, [r.best.text if r.best else "" for r in readings])
            save()

    # fp32 is the same model whichever runtime runs it (their logits agree to 1e-5): measured once, in PyTorch.
    # Quality is measured for the default variant and fp32 (PyTorch's int8 too where it is the default).
    v1_variants = [(name, reader) for name, reader in readers.items() if name in (default_name, "fp32")]
    answerable("squad_v1_dev", data / "dev-v1.1.json.gz",
               variants=[v for v in v1_variants if not (args.skip_fp32 and v[0] == "fp32")])
    answerable("xquad_en", data / "extra" / "xquad.en.json.gz", variants=[(default_name, default)])
    answerable("covid_qa", data / "extra" / "covid-qa-200423_covidQA.json.gz", sample=args.covid_sample,
               variants=[(default_name, default)])

    save()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
