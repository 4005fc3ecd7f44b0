"""How `make test` splits the suite over two workers (tests/support/lanes.py)."""

from __future__ import annotations

import fcntl
import threading
import time
from pathlib import Path
from types import SimpleNamespace

from tests.support import lanes


def _config(tmp_path) -> SimpleNamespace:
    """A worker's config, as far as lanes reads it."""
    return SimpleNamespace(workerinput={}, option=SimpleNamespace(loadgroup=True, basetemp=str(tmp_path / "popen-gw0")))


def test_a_clusters_package_is_one_group_and_other_tests_go_by_module():
    assert lanes.group_of("tests/e2e/test_faults.py::test_killed_pools_serve_again") == "e2e"
    assert lanes.group_of("tests/e2e/test_fuzz.py::test_every_operation_answers_as_documented") == "e2e"
    assert lanes.group_of("tests/e2e_nodes/test_shapes.py::test_x[a]") == "e2e_nodes"
    assert lanes.group_of("tests/helm/test_chart.py::test_y[ci/h200.yaml]") == "tests/helm/test_chart.py"
    # Only the packages themselves: a unit-test module named alike is not a cluster's.
    assert lanes.group_of("tests/deployments/test_e2e.py::test_z") == "tests/deployments/test_e2e.py"


def test_the_clusters_tests_come_first_in_their_own_order():
    names = ["tests/helm/test_chart.py::a", "tests/monitoring/test_container_logs.py::f",
             "tests/e2e_nodes/test_shapes.py::b", "tests/cluster/test_x.py::c", "tests/e2e/test_serving.py::d",
             "tests/e2e/test_faults.py::e"]
    items = [SimpleNamespace(nodeid=name) for name in names]
    lanes.order(items)
    assert [item.nodeid for item in items] == [
        "tests/e2e/test_serving.py::d", "tests/e2e/test_faults.py::e", "tests/e2e_nodes/test_shapes.py::b",
        "tests/monitoring/test_container_logs.py::f", "tests/helm/test_chart.py::a", "tests/cluster/test_x.py::c"]
    # Every heavy module named is one the suite has.
    repo = Path(__file__).resolve().parent.parent
    assert all((repo / module).is_file() for module in lanes.HEAVY_MODULES)


def test_outside_a_parallel_run_nothing_is_locked(tmp_path):
    config = _config(tmp_path)
    del config.workerinput
    assert not lanes.parallel(config)
    with lanes.machine_share(config, quiet=True), lanes.machine_share(config, quiet=True):
        pass  # a second exclusive hold would block in a parallel run


def _held(path) -> bool:
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def test_a_quiet_test_waits_for_shared_holders_and_holds_new_ones_back(tmp_path):
    config = _config(tmp_path)
    events: list[str] = []
    shared_in, release_shared = threading.Event(), threading.Event()

    def shared_test():
        with lanes.machine_share(config, quiet=False):
            events.append("shared runs")
            shared_in.set()
            release_shared.wait(10)
            events.append("shared ends")

    def quiet_test():
        with lanes.machine_share(config, quiet=True):
            events.append("quiet runs")
            events.append("quiet ends")

    def late_shared_test():
        with lanes.machine_share(config, quiet=False):
            events.append("late shared runs")

    first = threading.Thread(target=shared_test)
    first.start()
    assert shared_in.wait(10)
    quiet = threading.Thread(target=quiet_test)
    quiet.start()
    turnstile = lanes.shared_dir(config) / "turnstile"
    deadline = time.monotonic() + 10
    while not _held(turnstile):  # the quiet test waits, holding the turnstile
        assert time.monotonic() < deadline
        time.sleep(0.01)
    late = threading.Thread(target=late_shared_test)
    late.start()
    time.sleep(0.2)  # room for a wrongly admitted late test to run (the assertion below)
    assert events == ["shared runs"]
    release_shared.set()
    for thread in (first, quiet, late):
        thread.join(10)
        assert not thread.is_alive()
    assert events == ["shared runs", "shared ends", "quiet runs", "quiet ends", "late shared runs"]


def test_the_worker_without_the_e2e_cluster_yields_from_its_first_test_on(tmp_path, monkeypatch):
    niced: list[int] = []
    monkeypatch.setattr(lanes.os, "nice", niced.append)

    def first_tests(*nodeids):
        config = _config(tmp_path)
        config.stash = {}
        for nodeid in nodeids:
            lanes.set_priority(SimpleNamespace(config=config, nodeid=nodeid))

    first_tests("tests/e2e/test_serving.py::a", "tests/helm/test_chart.py::b")
    assert niced == []
    first_tests("tests/e2e_nodes/test_shapes.py::c", "tests/helm/test_chart.py::d")
    assert niced == [lanes.SECOND_WORKER_NICE]


def test_kv_blocks_cover_the_tokens_asked_for():
    assert lanes.kv_blocks(131_072) == 1024
    assert lanes.kv_blocks(129) == 2
