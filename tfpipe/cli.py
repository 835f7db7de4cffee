"""Shared command-line plumbing: flags every stage takes, and errors turned into exit codes.

Exit status: 0 success, 1 a parity gate failed (the metric is named), 2 bad input (one line
naming the file, field or value), 130 interrupted.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tfpipe.errors import GateFailed, TfpipeError

DEFAULT_CONFIG = "configs/quickstart.yaml"


@dataclass(frozen=True)
class Stage:
    name: str
    summary: str
    example: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[..., int | None]  # run(args, cfg) -> exit status
    needs_config: bool = True
    # run(args, cfg) before anything imports TensorFlow (a training stage's multi-worker strategy)
    before_tensorflow: Callable[..., None] | None = None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + message
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def points(text: str) -> float:
    """argparse type of a --max-drop budget: a finite number >= 0 (nan would turn every gate off,
    since no comparison with nan is true)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of points, e.g. 0.5") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not accepted: use a finite number of points >= 0, e.g. 0.5")
    return value


def workers(text: str) -> int:
    """argparse type of --workers: a process count of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not accepted: use a whole number of processes >= 1, e.g. 2")
    return int(text)


def workers_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=workers, default=None, metavar="N",
                        help="start N local processes of one multi-worker cluster (TF_CONFIG generated on "
                             "127.0.0.1, train.strategy multiworker) and wait for them (docs/training.md)")


def default_config() -> Path:
    """configs/quickstart.yaml in the working directory, else the one beside this checkout."""
    here = Path(DEFAULT_CONFIG)
    return here if here.exists() else Path(__file__).resolve().parent.parent / DEFAULT_CONFIG


def build_parser(stage: Stage) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=f"tfpipe {stage.name}",
        description=stage.summary,
        epilog=f"example:\n  {stage.example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if stage.needs_config:
        parser.add_argument("--config", type=Path, default=None,
                            help=f"experiment YAML (default: {DEFAULT_CONFIG})")
        parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                            help="override a config field, e.g. --set train.epochs=3 (repeatable)")
        parser.add_argument("--workdir", type=Path, default=Path("runs"),
                            help="parent of run directories (default: runs); the run is WORKDIR/<config name>")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and TensorFlow's own logging")
    stage.add_arguments(parser)
    return parser


def main(stage: Stage, argv: list[str] | None = None) -> None:
    args = build_parser(stage).parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for a stage that starts copies of itself
    if args.debug:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        os.environ["TFPIPE_DEBUG"] = "1"  # runtime workers show their stderr and tracebacks
    try:
        cfg = None
        if stage.needs_config:
            from tfpipe.config import load_config

            args.config = args.config or default_config()
            cfg = load_config(args.config, args.overrides)
            if stage.before_tensorflow:
                stage.before_tensorflow(args, cfg)
            from tfpipe import models

            try:  # model.name and model.args are checked before any work
                models.check(cfg.model, cfg.task)
            except TfpipeError as e:
                raise TfpipeError(f"{args.config}: {e.message}", e.hint) from None
        status = stage.run(args, cfg) or 0
    except TfpipeError as e:
        if args.debug:
            traceback.print_exc()
        print(f"tfpipe {stage.name}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except GateFailed as e:
        print(f"tfpipe {stage.name}: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"tfpipe {stage.name}: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(status)
