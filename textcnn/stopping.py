"""Ctrl-C and SIGTERM end a command within seconds at any stage, and the local Ray it started with it."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

FORCE_EXIT_S = 10.0     # after SIGINT/SIGTERM, how long the process may take to stop by itself
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_stop_signals_handled = threading.Event()
_stopped_by: list[int] = []          # the stop signal received, if any
_before_exit: list[Callable[[], None]] = []   # what exit_now runs first (runtime: stop the local Ray)


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM as Ctrl-C: KeyboardInterrupt in the main thread, so `finally` blocks, locks and
    Ray's own shutdown at exit run as they do for Ctrl-C."""
    _note(signum)
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _note(signum: int) -> None:
    if not _stopped_by:
        _stopped_by.append(signum)


def install() -> None:
    """For a command's process (main thread only): SIGTERM raises KeyboardInterrupt as Ctrl-C does,
    and a watchdog thread ends the process FORCE_EXIT_S after either (at once after a second),
    should the main thread still be running then: Python runs signal handlers only between
    bytecodes, so a main thread blocked in a C call (Ray's GCS connect, for up to 40 s) or a
    handler that waits (Ray Train's graceful abort on SIGINT) would otherwise hold the process.
    Ray's local processes die with this one (Ray starts them with PR_SET_PDEATHSIG)."""
    if threading.current_thread() is not threading.main_thread() or _stop_signals_handled.is_set():
        return
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    for signum in STOP_SIGNALS:
        signal.signal(signum, _interrupt)
    signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)   # written in C, whatever Python is doing
    threading.Thread(target=_watchdog, args=(reader, writer), name="textcnn-stop", daemon=True).start()
    _stop_signals_handled.set()


def _next_stop(reader: socket.socket) -> int:
    """The next SIGINT or SIGTERM written to the wakeup socket (other signals with Python handlers
    are written there too)."""
    while (signum := reader.recv(1)[0]) not in STOP_SIGNALS:
        pass
    return signum


def _watchdog(reader: socket.socket, writer: socket.socket) -> None:
    """writer: kept referenced here, so the wakeup fd stays open."""
    signum = _next_stop(reader)
    _note(signum)
    name = signal.Signals(signum).name
    log.warning("%s received: stopping, and the local Ray with it", name)
    reader.settimeout(FORCE_EXIT_S)
    try:
        log.error("%s received again: exiting now", signal.Signals(_next_stop(reader)).name)
    except TimeoutError:
        log.error("still running %g s after %s: exiting now", FORCE_EXIT_S, name)
    exit_now()


def exit_now() -> None:
    """End the process with status 128 + the stop signal, having stopped the local Ray it started;
    no interpreter shutdown (Ray's own at-exit shutdown is what left its agents behind). Ray's core
    worker may end the process first, with status 1, once its raylet is gone."""
    for step in _before_exit:
        try:
            step()
        except Exception:                 # stopping anyway: the kernel kills the rest (PR_SET_PDEATHSIG)
            log.exception("before exit: %s", getattr(step, "__name__", step))
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(128 + (received() or signal.SIGTERM))


def before_exit(step: Callable[[], None]) -> None:
    """Have exit_now run step (once, however often this is called) before it ends the process."""
    if step not in _before_exit:
        _before_exit.append(step)


def reinstall() -> None:
    """Put the SIGTERM handler back after ray.init replaced it (with sys.exit), if install() ran."""
    if _stop_signals_handled.is_set():
        signal.signal(signal.SIGTERM, _interrupt)


def received() -> int | None:
    """The SIGINT or SIGTERM this process received, if any (the exit status to report: 128 + it)."""
    return _stopped_by[0] if _stopped_by else None
