"""Compare trained readers on SQuAD v1.1 dev and v2.0 dev (gold paragraph given) and name the best.

    python bench/select_reader.py runs/a/final runs/b/final --device cuda --out runs/selection.json
    python bench/select_reader.py runs/a/selection.json runs/b/selection.json   # rank earlier results

For each reader: best-span F1/EM on v1.1 dev; on v2.0 dev a calibration (logistic of the span-vs-[CLS] margin)
and an abstention threshold are fitted on every other article and reported on the other half and on all, and
the calibration is written into the reader's folder as calibration.json. The best reader has the highest
v2.0 F1 among those with v1.1 F1 >= --min-v1-f1 (or, with none above it, the highest v1.1 F1 + v2.0 F1; full
sets). Used after GPU training runs (bench/gpu_train.sh) to choose the one to ship.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from qa.calibrate import article_halves, fit_abstention, v2_predictions, write_calibration
from qa.evaluate import read_gold_paragraphs, squad_scores
from qa.read import Reader
from qa.squad import SQUAD_DIR, read_squad


def evaluate(folder: str, device: str, batch_size: int, limit: int, data: Path = SQUAD_DIR) -> dict:
    reader = Reader(folder, device=device, reader_batch_size=batch_size)  # the product's variant on a CPU
    started = time.time()
    v1 = read_squad(data / "dev-v1.1.json.gz")
    v1_questions = v1.questions[:limit] if limit else v1.questions
    v1_readings = read_gold_paragraphs(reader, v1, v1_questions, batch=256, label=f"{folder} v1.1")
    result = {"reader": folder, "squad_v1_dev": squad_scores(v1_questions,
                                                             [r.best.text if r.best else "" for r in v1_readings])}
    v2 = read_squad(data / "dev-v2.0.json.gz")
    v2_questions = v2.questions[:limit] if limit else v2.questions
    v2_readings = read_gold_paragraphs(reader, v2, v2_questions, batch=256, label=f"{folder} v2.0")
    fit, held, fitted_on = article_halves(v2, v2_questions)
    calibration, threshold = fit_abstention(v2_questions, v2_readings, fit)
    predictions = v2_predictions(v2_readings, calibration, threshold)
    result["squad_v2_dev"] = squad_scores(v2_questions, predictions)
    result["squad_v2_dev_held_out_half"] = squad_scores([v2_questions[i] for i in held],
                                                        [predictions[i] for i in held])
    result["calibration"] = {"slope": calibration.slope, "intercept": calibration.intercept,
                             "best_threshold_on_fit_half": threshold}
    write_calibration(folder, calibration, {"fitted_on": f"SQuAD v2.0 dev, {fitted_on}", "runtime": reader.runtime,
                                            "best_threshold_on_fit_half": threshold})
    result["seconds"] = round(time.time() - started, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("readers", nargs="+", help="reader folders (AutoModelForQuestionAnswering + tokenizer), "
                        "or result files of earlier runs (*.json) to rank")
    parser.add_argument("--data", type=Path, default=SQUAD_DIR, help="folder with dev-v1.1.json.gz and dev-v2.0.json.gz")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64, help="windows per forward pass")
    parser.add_argument("--limit", type=int, default=0, help="first N questions of each set (0: all)")
    parser.add_argument("--min-v1-f1", type=float, default=0.0,
                        help="choose on v2.0 F1 among readers at least this good on v1.1")
    parser.add_argument("--out", default="runs/selection.json")
    args = parser.parse_args()
    results = []
    for folder in args.readers:
        if folder.endswith(".json"):
            if Path(folder).is_file():
                results.extend(r for r in json.loads(Path(folder).read_text())["results"])
            continue
        if not (Path(folder) / "config.json").is_file():
            print(f"skipped {folder}: no config.json (training did not finish)", file=sys.stderr)
            continue
        results.append(evaluate(folder, args.device, args.batch_size, args.limit, args.data))
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"best": None, "results": results}, indent=1))
    if not results:
        sys.exit("no reader to compare")
    good_enough = [r for r in results if r["squad_v1_dev"]["f1"] >= args.min_v1_f1]
    best = max(good_enough, key=lambda r: r["squad_v2_dev"]["f1"]) if good_enough else \
        max(results, key=lambda r: r["squad_v1_dev"]["f1"] + r["squad_v2_dev"]["f1"])
    Path(args.out).write_text(json.dumps({"best": best["reader"], "results": results}, indent=1))
    for r in results:
        print(f"{r['reader']:40s} v1.1 F1 {r['squad_v1_dev']['f1']:6.2f}  v2.0 F1 {r['squad_v2_dev']['f1']:6.2f}  "
              f"no-answer acc {r['squad_v2_dev']['no_answer_accuracy']:6.2f}  threshold "
              f"{r['calibration']['best_threshold_on_fit_half']}")
    print("best:", best["reader"])


if __name__ == "__main__":
    main()
