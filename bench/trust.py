"""Trust end to end: the answer scorer against the reader's own margin, on the same readings.

Each SQuAD-format set's paragraphs are the corpus; every question is retrieved and read once, exactly as
`QA.ask` does (qa.calibrate.harvest), and then answered two ways from the same candidates:
- "reader margin": the span with the best margin, its calibrated confidence, threshold 0.2 (the rule before the
  answer scorer);
- "answer scorer": the candidate the scorer finds most probable, its probability, the configured threshold;
and both at thresholds 0.1-0.5 ("frontier"), to compare them where they decline equally often.
Nothing here is fitted: the scorer and its threshold come from SQuAD train (python -m qa.calibrate).

    python bench/trust.py [--sets v1.1 v2.0 xquad] [--sample N]     # writes bench/results/trust.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from qa.aggregate import AnswerScorer
from qa.answer import QA
from qa.calibrate import choose, harvest
from qa.config import Config
from qa.evaluate import auroc, read_questions

ROOT = Path(__file__).resolve().parent.parent
SQUAD = ROOT.parent / "shared" / "data" / "squad"
SETS = {"v1.1": SQUAD / "dev-v1.1.json.gz", "v2.0": SQUAD / "dev-v2.0.json.gz",
        "xquad": SQUAD / "extra" / "xquad.en.json.gz"}
OLD_THRESHOLD = 0.2
FRONTIER = (0.1, 0.2, 0.3, 0.4, 0.5)


def metrics(records: list[dict], scorer: AnswerScorer | None, threshold: float) -> dict:
    chosen = [choose(r, scorer) for r in records]
    answerable = np.array([r["answerable"] for r in records])
    has = np.array([bool(r["features"]) for r in records])
    p = np.array([c[0] for c in chosen])
    candidate_f1 = np.array([c[1] for c in chosen])
    answered = has & (p >= threshold)
    shown = np.where(answered, candidate_f1, np.where(answerable, 0.0, 1.0))
    order = np.argsort(-p, kind="mergesort")

    def at(coverage: int) -> float:
        n = max(1, round(len(order) * coverage / 100))
        return round(100 * float(candidate_f1[order[:n]].mean()), 2)

    def pct(x) -> float | None:
        return round(100 * float(np.mean(x)), 2) if len(x) else None

    value = auroc(p, candidate_f1 >= 0.5)
    return {"threshold": threshold, "f1": pct(shown), "answerable_f1": pct(shown[answerable]),
            "answerable_answered": pct(answered[answerable]), "unanswerable_declined": pct(~answered[~answerable]),
            "confidence_auroc": round(value, 4) if value is not None else None,
            "f1_at_50%_coverage": at(50), "f1_at_80%_coverage": at(80), "f1_at_100%_coverage": at(100)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--sample", type=int, default=0, help="N questions of each set drawn at random (0: all)")
    parser.add_argument("--records-dir", default="", help="keep the harvested candidates here and reuse them")
    args = parser.parse_args()
    out = ROOT / "bench" / "results" / "trust.json"
    results = json.loads(out.read_text()) if out.is_file() else {}
    config = Config()
    scorer = AnswerScorer.for_reader(config.reader)
    for name in args.sets:
        questions, documents = read_questions(SETS[name])
        if args.sample and args.sample < len(questions):
            questions = random.Random(0).sample(questions, args.sample)
        cached = Path(args.records_dir) / f"{name}-{args.sample or 'all'}.records.jsonl" if args.records_dir else None
        if cached and cached.is_file():
            records = [json.loads(line) for line in cached.read_text().splitlines()]
        else:
            bot = QA(corpus=[], index_dir=tempfile.mkdtemp(prefix=f"qa-trust-{name}-"))
            bot.add_documents(documents)
            started = time.perf_counter()
            records = harvest(bot, questions)
            print(f"{name}: {len(records)} questions read in {time.perf_counter() - started:.0f} s", file=sys.stderr)
            if cached:
                cached.parent.mkdir(parents=True, exist_ok=True)
                cached.write_text("".join(json.dumps(r) + "\n" for r in records))
        results[name] = {"questions": len(records), "unanswerable": sum(not r["answerable"] for r in records),
                         "reader margin": metrics(records, None, OLD_THRESHOLD),
                         "answer scorer": metrics(records, scorer, config.threshold) if scorer else None,
                         # every operating point of both, to compare them at equal abstention
                         "frontier": {f"{variant} {t:.2f}": {k: v for k, v in metrics(records, s, t).items()
                                                             if k in ("f1", "answerable_answered", "unanswerable_declined")}
                                      for variant, s in (("reader margin", None), ("answer scorer", scorer))
                                      for t in FRONTIER}}
        print(name, json.dumps(results[name], indent=1), file=sys.stderr)
        out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
