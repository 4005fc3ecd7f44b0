"""The planner's verdict (cluster/planner/report.py): soft and strict failures."""

from cluster.planner import failures
from tests.cluster.planner.synthetic import gpu_profile, plan_of


def test_concurrency_is_soft_unless_strict():
    plan = plan_of(gpu_profile(engine={"max_num_seqs": 16}))
    assert plan.fits and not plan.fits_all_seqs
    assert plan.full_length_seqs == plan.max_tokens // 131072
    assert failures([plan]) == []
    assert "max_num_seqs" in failures([plan], strict=True)[0]
