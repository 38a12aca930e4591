"""Joining a cluster named by RAY_ADDRESS fails fast and in one line when nothing answers there
(no Ray is started here)."""

import time

import pytest

from tests.conftest import free_port
from textcnn import runtime

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("address, expected", [
    ("10.0.0.1:6379", ("10.0.0.1", 6379)), ("ray://head:10002", ("head", 10002)), ("ray://head", ("head", 10001)),
    ("[::1]:6379", ("::1", 6379)), ("head", ("head", 0))])
def test_the_host_and_port_of_an_address(address, expected):
    assert runtime._host_port(address) == expected


def test_auto_names_the_cluster_ray_start_recorded(tmp_path, monkeypatch):
    import ray._private.services
    if ray._private.services.find_gcs_addresses():    # Ray's "auto" takes a running GCS before the record
        pytest.skip("a Ray cluster is running on this machine: RAY_ADDRESS=auto means that one")
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text("10.1.2.3:6380")
    assert runtime._host_port("auto") == ("10.1.2.3", 6380)


def test_a_dead_address_is_refused_in_one_line_naming_it(monkeypatch):
    monkeypatch.setattr(runtime, "JOIN_WAIT_S", 1.0)
    port = free_port()
    started = time.monotonic()
    with pytest.raises(runtime.RayConnectError) as e:
        runtime._wait_reachable(f"127.0.0.1:{port}", "127.0.0.1", port)
    assert time.monotonic() - started < 5
    assert str(e.value).startswith(f"no Ray cluster answers at RAY_ADDRESS=127.0.0.1:{port}")
    assert "\n" not in str(e.value)
