"""A real local Ray for the integration tests, started once for this folder and shut down after."""

import pytest
import ray


@pytest.fixture(scope="package", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=True, log_to_driver=False)
    yield
    ray.shutdown()
