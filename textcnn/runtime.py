"""Joining or starting Ray, and checking that what a job asks for exists before it waits forever."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

import ray
import ray.data
from ray.util.queue import Empty, Queue

from textcnn import console, stopping
from textcnn.errors import TextcnnError

log = logging.getLogger(__name__)

JOIN_WAIT_S = 10.0      # how long a join waits for RAY_ADDRESS to accept connections


class ResourceError(TextcnnError, RuntimeError):
    """The cluster lacks what the job asks for (a request Ray would otherwise wait on silently)."""


class RayConnectError(TextcnnError, RuntimeError):
    """RAY_ADDRESS names a Ray cluster this process cannot reach."""


def ensure_ray() -> None:
    """Join the cluster named by RAY_ADDRESS (as `ray job submit` sets it), else start a private
    local Ray: never the cluster an earlier `ray start` recorded (what a bare `ray.init()` joins;
    a stale record had commands retrying a dead head for minutes)."""
    stopping.before_exit(stop_local_ray)               # a stop signal ends the Ray started here too
    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS", "")
    if address and address != "local":
        _join(address)
    else:
        _init("local")
        log.info("started a private local Ray with %s (RAY_ADDRESS is not set%s)", ray.cluster_resources(),
                 _recorded_hint())
    stopping.reinstall()                               # ray.init put its own SIGTERM handler in place


def _init(address: str) -> None:
    """ray.init, its workers' logs and Ray's own INFO lines shown only with --verbose (a stage's
    error still reaches the driver as its exception); Ray Data's progress bars on a terminal only."""
    chatty = console.verbose()
    ray.init(address=address, log_to_driver=chatty, logging_level=logging.INFO if chatty else logging.ERROR)
    if not chatty:
        console.quiet_ray()        # ray.init set up Ray's loggers again
    data = ray.data.DataContext.get_current()
    data.enable_progress_bars = data.enable_rich_progress_bars = console.progress_bars()
    data.use_ray_tqdm = False        # Ray Data's rich UI (the tqdm one drew nothing on a terminal here)


def _recorded_hint() -> str:
    """Where `ray start` recorded a cluster on this machine, which a private Ray does not join."""
    try:
        recorded = ray._private.utils.read_ray_address()
    except (AttributeError, OSError):              # Ray's private API moved: the hint is optional
        return ""
    return f"; to join the cluster `ray start` recorded at {recorded}, set RAY_ADDRESS={recorded}" if recorded else ""


def _join(address: str) -> None:
    """Join address, or fail in one line naming it: probe its port first, since Ray's own connect
    retries a dead GCS for minutes (20 tries of ~40 s) without running signal handlers."""
    host, port = _host_port(address)
    if port:
        _wait_reachable(address, host, port)
    log.info("connecting to the Ray cluster at RAY_ADDRESS=%s", address)
    try:
        with _one_gcs_try():
            _init(address)
    except (ConnectionError, RuntimeError) as e:
        raise RayConnectError(f"cannot join the Ray cluster at RAY_ADDRESS={address}: {_first_line(e)}") from None
    log.info("joined the Ray cluster at %s", address)


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _host_port(address: str) -> tuple[str, int]:
    """host and port of a RAY_ADDRESS (host:port, ray://host:port, or auto: the recorded cluster);
    port 0 when it names none."""
    if address == "auto":
        try:
            address = ray._private.services.canonicalize_bootstrap_address("auto") or ""
        except ConnectionError as e:          # nothing recorded and no GCS running here
            raise RayConnectError(f"RAY_ADDRESS=auto: {_first_line(e)}") from None
    scheme, _, rest = address.rpartition("://")
    host, _, port = rest.rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        return rest, 10001 if scheme == "ray" else 0
    return host.strip("[]"), int(port)


def _wait_reachable(address: str, host: str, port: int) -> None:
    """Wait up to JOIN_WAIT_S for host:port to accept a TCP connection (a head just started may
    not listen yet), in short steps that let Ctrl-C and SIGTERM through."""
    deadline, error = time.monotonic() + JOIN_WAIT_S, None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=2):
                return
        except OSError as e:
            error = e
            time.sleep(0.5)
    raise RayConnectError(f"no Ray cluster answers at RAY_ADDRESS={address} ({host}:{port}: "
                          f"{getattr(error, 'strerror', None) or error}, for {JOIN_WAIT_S:g} s); "
                          "start it, fix RAY_ADDRESS, or unset it to run on a private local Ray")


@contextlib.contextmanager
def _one_gcs_try() -> Iterator[None]:
    """One GCS connect attempt (~40 s at most) instead of 20, for a port that answers but is not
    a Ray head; a setting of the user's own is kept."""
    name = "RAY_gcs_server_port_wait_time_s"
    if name in os.environ:
        yield
        return
    os.environ[name] = "1"
    try:
        yield
    finally:
        os.environ.pop(name, None)


def stop_local_ray() -> None:
    """Stop the Ray processes ray.init started here (raylet first: it stops its agents), before
    disconnecting. ray.shutdown disconnects first, and a Ray Data thread still running after an
    interrupt then ends the process (the core worker's quick exit): the kernel kills the raylet
    and its dashboard and runtime-env agents, waiting on the dead GCS, ran on for minutes."""
    node = getattr(ray._private.worker, "_global_node", None)
    if node is not None and node.is_head():     # started here; a joined cluster is left alone
        node.kill_all_processes(check_alive=False, allow_graceful=True, wait=True)


class LogFeed:
    """The log lines of textcnn's loggers on rank 0 of Ray Train's workers (each epoch's line among
    them), shown on the driver as they come. Through a Ray queue, because workers' own output
    reaches the driver only with --verbose, and then under Ray's per-process prefixes. Workers get
    `queue` (it pickles; this object, with its thread, does not) and call forward_logs with it."""

    def __init__(self, logger: str = "textcnn.training.train") -> None:
        self.log = logging.getLogger(logger)
        self.queue: Queue | None = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LogFeed:
        self.queue = Queue(actor_options={"num_cpus": 0})
        self._thread = threading.Thread(target=self._drain, name="textcnn-log-feed", daemon=True)
        self._thread.start()
        return self

    def _drain(self) -> None:
        while not (self._done.is_set() and self.queue.empty()):
            try:
                self.log.info(self.queue.get(timeout=0.5))
            except Empty:
                continue
            except Exception:            # the queue's actor went with Ray (Ctrl-C): nothing more to show
                return

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.queue is not None:
            ray.kill(self.queue.actor)


class _ToQueue(logging.Handler):
    def __init__(self, queue: Queue) -> None:
        super().__init__(logging.INFO)
        self.queue = queue

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record.getMessage())
        except Exception:                # a full or gone queue costs the driver a line, never the run
            self.handleError(record)


def forward_logs(queue: Queue | None) -> None:
    """On a worker: send textcnn's INFO lines to a LogFeed's queue (once per process)."""
    textcnn_log = logging.getLogger("textcnn")
    if queue is None or any(isinstance(h, _ToQueue) for h in textcnn_log.handlers):
        return
    textcnn_log.addHandler(_ToQueue(queue))
    textcnn_log.setLevel(logging.INFO)


def default_actors(use_gpu: bool) -> int:
    """Scoring actors for this cluster: one per GPU, or one per CPU core."""
    have = ray.cluster_resources()
    return max(1, int(have.get("GPU", 0) if use_gpu else have.get("CPU", 1)))


def default_batch_size(use_gpu: bool) -> int:
    """Rows per scoring call. Each call sorts its rows by length and runs them in chunks trimmed to
    their longest row, so a larger batch pads less: on one CPU thread, 2048- and 8192-row batches
    scored 1.1-1.4x the rows/s of 512-row ones. A GPU wants more rows per call still."""
    return 8192 if use_gpu else 4096


def require(cpus: float, gpus: float, what: str) -> None:
    """Fail clearly when the cluster cannot ever hold cpus/gpus at once."""
    have = ray.cluster_resources()
    have_gpus, have_cpus = have.get("GPU", 0.0), have.get("CPU", 0.0)
    if gpus > have_gpus:
        raise ResourceError(f"{what} asks for {gpus:g} GPU(s) but the Ray cluster has {have_gpus:g}; "
                            "drop --gpus or add GPU nodes")
    if cpus > have_cpus:
        raise ResourceError(f"{what} asks for {cpus:g} CPU(s) but the Ray cluster has {have_cpus:g}; "
                            "use fewer workers/actors or a smaller CPU share each")


def map_tasks(fn: Callable, args: list[tuple]) -> list:
    """fn(*a) for each a in args, as Ray tasks of one CPU, results in order: the thin Ray layer over
    Ray-free task bodies (ids.py). The bodies write to names fixed by their arguments, so a task
    retried after a lost node writes the same files."""
    if not args:
        return []
    ensure_ray()
    remote = ray.remote(num_cpus=1, max_retries=3)(fn)
    return ray.get([remote.remote(*a) for a in args])
