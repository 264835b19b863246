"""A local Ray cluster (2 CPUs) for a cohort test module, started once and shut down after that module: module scope,
so that another module's own Ray session (test_batch's) never meets it, whichever order the modules run in."""

from __future__ import annotations

import os

import pytest

from pipeline.cohort.pairs_runner import KILL_PAIR_ONCE_ENV


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """Yields the kill-once marker of the comparisons' test hook: armed only once its folder is created.

    The hook's variable is set only while the cluster starts, so that Ray's worker processes inherit it and this
    process (where local runs compare pairs) never does.
    """
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("a Ray session is already running in this process")
    marker = tmp_path_factory.mktemp("kill_pair") / "armed" / "killed"
    os.environ[KILL_PAIR_ONCE_ENV] = str(marker)
    try:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    finally:
        del os.environ[KILL_PAIR_ONCE_ENV]
    yield marker
    ray.shutdown()
