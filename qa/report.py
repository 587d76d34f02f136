"""Evaluation output: per-question rows as CSV or JSON, and a self-contained HTML report with plots."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from qa.evaluate import OUTCOMES, Report, Row, coverage_curve


def write_rows(rows: list[Row], path: str | Path) -> None:
    path = Path(path)
    if path.suffix.lower() == ".csv":
        import csv

        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(asdict(rows[0]).keys()) if rows else ["id"])
            writer.writeheader()
            for row in rows:
                record = asdict(row)
                record["gold"] = " | ".join(row.gold)
                writer.writerow(record)
    else:
        path.write_text(json.dumps([asdict(r) for r in rows], indent=1, ensure_ascii=False), encoding="utf-8")


def _plot_png(draw) -> str:
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5.2, 3.4), dpi=110)
    draw(axes)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _metric_tables(metrics: dict) -> tuple[str, str]:
    """HTML rows: every plain metric, and the lost F1 per outcome."""
    import html

    plain = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                    for k, v in metrics.items() if k not in ("f1_by_type", "breakdown"))
    lost = "".join(f"<tr><td>{html.escape(OUTCOMES[name])}</td><td>{v['questions_%']}</td>"
                   f"<td>{v['f1_points_lost']}</td></tr>" for name, v in metrics.get("breakdown", {}).items())
    return plain, lost


def write_html_report(report: Report, path: str | Path, title: str = "QA evaluation") -> None:
    import html

    rows, metrics = report.rows, report.metrics

    def by_type(ax):
        types = sorted(metrics["f1_by_type"], key=lambda t: -sum(r.type == t for r in rows))
        ax.bar(types, [metrics["f1_by_type"][t] or 0 for t in types], color="#3b6ea8")
        ax.set_ylabel("F1")
        ax.set_ylim(0, 100)
        ax.set_title("F1 by question type")

    def confidence(ax):
        bins = np.linspace(0, 1, 11)
        scores = np.array([r.score for r in rows])
        correct = np.array([r.f1 for r in rows])
        centres, means = [], []
        for low, high in zip(bins[:-1], bins[1:]):
            inside = (scores >= low) & (scores < high if high < 1 else scores <= high)
            if inside.any():
                centres.append((low + high) / 2)
                means.append(correct[inside].mean())
        ax.plot([0, 1], [0, 1], "--", color="#999", label="perfect calibration")
        ax.plot(centres, means, "o-", color="#c0392b", label="observed")
        ax.set_xlabel("confidence")
        ax.set_ylabel("mean F1 (0-1)")
        ax.set_title("Confidence vs correctness")
        ax.legend(loc="upper left", fontsize=8)

    def coverage(ax):
        curve = coverage_curve(rows)
        ax.plot([c for c, _ in curve], [f for _, f in curve], "o-", color="#8e44ad")
        ax.set_xlabel("coverage: most confident % of questions answered")
        ax.set_ylabel("F1 of those answers")
        ax.set_ylim(0, 100)
        ax.set_title("Selective answering")

    def latency(ax):
        ax.hist([r.latency_ms for r in rows], bins=30, color="#27ae60")
        ax.set_xlabel("milliseconds per question")
        ax.set_title("Latency")

    plots = "".join(f'<img alt="plot" src="data:image/png;base64,{_plot_png(f)}">'
                    for f in (by_type, confidence, coverage, latency))
    metric_rows, lost = _metric_tables(metrics)
    worst = sorted(rows, key=lambda r: (r.f1, -r.score))[:50]
    question_rows = "".join(
        f"<tr><td>{html.escape(r.question)}</td><td>{html.escape(' | '.join(r.gold) or '(no answer)')}</td>"
        f"<td>{html.escape(r.prediction or '(not found)')}</td><td>{r.score:.2f}</td><td>{r.f1:.2f}</td></tr>"
        for r in worst)
    Path(path).write_text(f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}}img{{margin:6px}}</style></head>
<body><h1>{html.escape(title)}</h1><table>{metric_rows}</table>
<h2>Where the points go</h2><table><tr><th>outcome</th><th>% of questions</th><th>F1 points lost</th></tr>{lost}</table>
<h2>Plots</h2>{plots}
<h2>Lowest-scoring questions</h2><table><tr><th>question</th><th>gold</th><th>prediction</th><th>confidence</th>
<th>F1</th></tr>{question_rows}</table></body></html>""", encoding="utf-8")
