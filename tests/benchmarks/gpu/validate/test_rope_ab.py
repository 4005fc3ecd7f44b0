"""benchmarks/gpu/validate/rope_ab.py: each prefill's GPU clock and power, and the arms that explain InternLM3's gap."""

import json
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.gpu.validate import rope_ab

RESULTS = Path(__file__).resolve().parents[4] / "benchmarks" / "results" / "gpu"
HEADER = "timestamp, clocks.current.sm [MHz], power.draw [W], temperature.gpu, utilization.gpu [%]\n"


def _unix(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def _samples_csv(path: Path, samples: list[tuple[str, int, float]]) -> None:
    lines = [f"2026/12/02 {t}, {mhz} MHz, {watts:.2f} W, 50, 100 %\n" for t, mhz, watts in samples]
    path.write_text(HEADER + "".join(lines))


def _results(tmp_path: Path, name: str, stage: dict, samples, log: str | None = None) -> Path:
    (tmp_path / "logs").mkdir(exist_ok=True)
    (tmp_path / f"{name}.json").write_text(json.dumps(stage))
    _samples_csv(tmp_path / "logs" / f"{name}.gpu.csv", samples)
    if log is not None:
        (tmp_path / "logs" / f"{name}.log").write_text(log)
    return tmp_path


def test_medians_come_from_the_samples_inside_each_prefill(tmp_path):
    name = "internlm3-ab2-stock"
    stage = {"started": "2026-12-02T03:00:00", "prefill": [
        {"tokens": 1000, "started_unix": _unix("2026-12-02T03:00:10"), "stock_s": 2.0},
        {"tokens": 2000, "started_unix": _unix("2026-12-02T03:00:20"), "stock_s": 1.0},
    ]}
    samples = [("03:00:09.000", 345, 80.0),  # idle, before the first prefill
               ("03:00:10.500", 1500, 690.0), ("03:00:11.000", 1520, 692.0), ("03:00:11.500", 1980, 300.0),
               ("03:00:15.000", 345, 80.0),  # between the prefills
               ("03:00:20.400", 1800, 650.0)]
    arm = next(a for a in rope_ab.arm_rows(_results(tmp_path, name, stage, samples)) if a["arm"] == name)
    first, second = arm["prefill"]
    assert (first["sm_clock_mhz"], first["power_w"], first["samples"]) == (1520, 690.0, 3)
    assert (second["sm_clock_mhz"], second["power_w"], second["samples"]) == (1800, 650.0, 1)


def test_runs_without_start_times_are_placed_by_their_log_lines(tmp_path):
    # The first A/B runs' rows had no start time; the stock stage's progress line
    # (its end, to the second) and the prefill's duration place the window.
    name = "internlm3-ab-stock"
    stage = {"started": "2026-12-02T03:00:00", "prefill": [{"tokens": 131072, "stock_s": 3.0}]}
    log = "# a comment line\n[validate 03:00:13] stock prefill 131,072: 3.00 s\n"
    samples = [("03:00:09.900", 345, 80.0), ("03:00:11.000", 1840, 670.0), ("03:00:13.400", 1860, 660.0),
               ("03:00:14.000", 345, 80.0)]
    arm = next(a for a in rope_ab.arm_rows(_results(tmp_path, name, stage, samples, log)) if a["arm"] == name)
    assert arm["prefill"] == [{"tokens": 131072, "seconds": 3.0, "sm_clock_mhz": 1850.0, "power_w": 665.0,
                               "samples": 2}]


def test_ours_is_set_against_stock_and_stock_with_a_correct_rope_per_size(tmp_path):
    def arm(name, seconds):
        return {"arm": name, "prefill": [{"tokens": 10, "seconds": seconds, "sm_clock_mhz": 1, "power_w": 1}]}

    rows = rope_ab.ours_against_stock([arm(rope_ab.OURS, 10.0), arm(rope_ab.STOCK, 8.0),
                                       arm(rope_ab.CORRECT_STOCK, 9.9)])
    assert [(r["ratio_vs_stock"], r["ratio_vs_stock_correct_rope"]) for r in rows] == [(0.8, 0.99)]
    assert rope_ab.ours_against_stock([arm(rope_ab.OURS, 10.0)]) == []


def test_committed_arms_ran_the_rotary_they_are_named_for():
    """Each A/B arm's engine reported its own rotary class and cache (LLM.apply_model in the stock stage)."""
    arms = {a["arm"]: a for a in rope_ab.arm_rows(RESULTS)}
    assert {name for name, _, _ in rope_ab.ARMS} == arms.keys()
    ours, stock, full = (("PoolDynamicNTKRotaryEmbedding", 196608), ("DynamicNTKScalingRotaryEmbedding", 32768),
                         ("LinearScalingRotaryEmbedding", 196608))
    expected = {"internlm3-ab-plugin": ours, "internlm3-ab-stock": stock, "internlm3-ab-linear": full,
                "internlm3-ab-linear-theta": full, "internlm3-ab-stock-2": stock, "internlm3-ab2-stock": stock,
                "internlm3-ab2-linear-theta": full}
    assert {name: (arms[name]["rotary"]["class"], arms[name]["rotary"]["cache_rows"]) for name in expected} == expected
    assert arms["internlm3-ab-linear-theta"]["rotary"]["base"] == 5e7  # the override kept the model's theta
    # Every prefill of a sampled run has clock samples inside it.
    sampled = [a for a in arms.values() if a["machine"] > 1]
    assert sampled and all(row["samples"] > 0 for a in sampled for row in a["prefill"])
