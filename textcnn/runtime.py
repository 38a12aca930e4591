"""Joining or starting Ray, and checking that what a job asks for exists before it waits forever."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import ray

log = logging.getLogger(__name__)


class ResourceError(RuntimeError):
    """The cluster lacks what the job asks for (a request Ray would otherwise wait on silently)."""


def ensure_ray() -> None:
    """Join the cluster named by RAY_ADDRESS (as `ray job submit` sets it), else start a local one."""
    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
        log.info("joined Ray cluster at %s", address)
    else:
        ray.init(log_to_driver=True)  # the dashboard serves the State API Ray Train polls
        log.info("started a local Ray with %s", ray.cluster_resources())


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
