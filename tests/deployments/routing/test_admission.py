"""Admission control: bounded in-flight requests per pool."""

import pytest

from deployments.routing.admission import AdmissionController, PoolFull, PoolUnavailable


def test_bound_then_release():
    depths = []
    control = AdmissionController({"p": 2}, {"p": 7}, on_depth=lambda pool, d: depths.append(d))
    a, b = control.acquire("p"), control.acquire("p")
    with pytest.raises(PoolFull) as info:
        control.acquire("p")
    assert info.value.retry_after_s == 7 and "limit of 2" in str(info.value)
    a.release()
    a.release()  # idempotent: a second release must not free a slot
    assert control.depth("p") == 1
    control.acquire("p")
    assert depths == [1, 2, 1, 2]
    b.release()


def test_no_healthy_replica_is_unavailable_but_unknown_is_admitted():
    control = AdmissionController({"p": 1}, {"p": 1})
    control.acquire("p").release()  # health not known yet: admit
    control.set_healthy_replicas("p", 0)
    with pytest.raises(PoolUnavailable):
        control.acquire("p")
    control.set_healthy_replicas("p", 1)
    control.acquire("p").release()
