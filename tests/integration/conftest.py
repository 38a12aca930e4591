"""A real local Ray for the integration tests, started once for this folder and shut down after."""

import pytest
import ray


@pytest.fixture(scope="package", autouse=True)
def local_ray():
    # address="local": a bare ray.init() joins whatever cluster `ray start` last recorded here
    ray.init(address="local", num_cpus=2, include_dashboard=True, log_to_driver=False)
    yield
    ray.shutdown()
