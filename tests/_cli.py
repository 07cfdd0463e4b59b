"""Helpers of the command-line tests: run ``gbfocal`` in this process, and a tiny bench command."""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Sequence

from gbfocal.cli import main

#: A bench run of about a second: 1,000 synthetic rows, one seed, one engine, one method, three trees.
TINY = [
    "bench",
    "--datasets",
    "synthetic",
    "--max-rows",
    "1000",
    "--seeds",
    "1",
    "--rounds",
    "3",
    "--engines",
    "lightgbm",
    "--methods",
    "focal",
    "--jobs",
    "1",
    "--quiet",
]

#: Runs ``gbfocal`` as the console script does, for tests that need a real process (signals, pipes).
COMMAND = [sys.executable, "-c", "import sys; from gbfocal.cli import main; sys.exit(main())"]


def run_cli(argv: Sequence[str]) -> tuple[int, str, str]:
    """``(exit status, stdout, stderr)`` of ``gbfocal argv``; argparse's usage errors give status 2."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()
