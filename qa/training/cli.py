"""`qa train` (also `python -m qa.training`): one flag per TrainConfig field."""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict, fields

from qa.training.config import TrainConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for name, default in asdict(TrainConfig()).items():
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "yes"), default=default)
        else:
            parser.add_argument(flag, type=type(default), default=default)
    parser.add_argument("--resume", action="store_true", help="continue from output_dir/checkpoint")


def main(argv: list[str] | None = None) -> None:
    from qa.training.loop import train

    parser = argparse.ArgumentParser(prog="qa train", description="Fine-tune an extractive span reader on "
                                     "SQuAD-format data (see qa/training/__init__.py).")
    add_arguments(parser)
    args = parser.parse_args(argv)
    names = {f.name for f in fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in vars(args).items() if k in names})
    logging.basicConfig(level=logging.INFO)
    print(train(config, resume=args.resume))
