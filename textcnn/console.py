"""What a person at the terminal sees: our log lines, one line per epoch, progress bars on a
terminal, and Ray's own logs only when asked for (--verbose). Ray-free: `predict` imports it too.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Any

VERBOSE_ENV = "TEXTCNN_VERBOSE"   # read by runtime.ensure_ray; an environment variable so jobs inherit it
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_QUIET = "%(asctime)s %(message)s"
# Ray's own loggers, quiet unless --verbose: their INFO and WARNING lines (execution plans, status
# dumps, token-auth and progress-bar notices) are about Ray's internals, not the user's job; its
# errors still show
_stderr_split = False    # _python_only_stderr has run
RAY_LOGGERS = ("ray", "ray.data", "ray.train", "ray.tune", "ray.air", "ray.serve")


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


def setup(verbose_output: bool) -> None:
    """Logging for a command: our INFO lines (DEBUG and Ray's own with verbose_output) on stderr."""
    os.environ[VERBOSE_ENV] = "1" if verbose_output else "0"
    if not verbose_output:
        _python_only_stderr()          # before the handler below takes sys.stderr
    logging.basicConfig(level=logging.DEBUG if verbose_output else logging.INFO, stream=sys.stderr,
                        format=_FORMAT if verbose_output else _QUIET, datefmt="%H:%M:%S")
    if not verbose_output:
        quiet_ray()


def _python_only_stderr() -> None:
    """Keep the terminal for Python's writes (logging, click, tracebacks) and send what C code
    writes to file descriptor 2 to /dev/null: Ray's C++ core prints notes such as actor-lineage
    "errors" there, which no setting silences without printing a line of its own. Only for the
    process's own stderr (not a test runner's stand-in), once."""
    global _stderr_split
    if sys.stderr is not sys.__stderr__ or _stderr_split:
        return
    sys.stderr.flush()
    python_side = os.fdopen(os.dup(2), "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace")
    _stderr_split = True
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)
    sys.stderr = sys.__stderr__ = python_side


def quiet_ray() -> None:
    """Ray's loggers at ERROR and its Python warnings off, here and (runtime.ensure_ray) in the Ray
    it starts."""
    for name in RAY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"ray(\.|$)")


def progress_bars() -> bool:
    """Progress bars only where a person watches: stderr is a terminal. A log file or a job's
    output gets plain lines instead (bars redrawn with carriage returns make it unreadable)."""
    return sys.stderr.isatty()


def epoch_line(metrics: dict[str, Any], phase: str, epochs: int) -> str:
    """One line for an epoch of training: counted from 1, its losses, validation metrics and time."""
    head = f"{'refit ' if phase == 'refit' else ''}epoch {metrics['epoch'] + 1}/{epochs}: "
    parts = [f"train loss {metrics['train_loss']:.4f}"]
    if "val_loss" in metrics:
        parts += [f"val loss {metrics['val_loss']:.4f}", f"accuracy {metrics['val_acc']:.4f}",
                  f"macro-F1 {metrics['val_macro_f1']:.4f}"]
    tail = ", stopping early" if metrics.get("stopped_early") else ""
    return head + ", ".join(parts) + f" ({metrics['epoch_seconds']:.1f} s){tail}"
