"""A trained reader packed for shipping."""

from __future__ import annotations

from pathlib import Path


def export_reader(source: str | Path, target: str | Path, dtype: str = "float16") -> Path:
    """Write a trained reader as a compact safetensors folder (fp16 halves the size; loads back as fp32)."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    model = AutoModelForQuestionAnswering.from_pretrained(source)
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    model.to(getattr(torch, dtype)).save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    return target
