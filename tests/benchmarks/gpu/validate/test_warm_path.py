"""benchmarks/gpu/validate/warm_path.py: issue 27's rows from the samples, and a length measured in two commands."""

import argparse
import json

from benchmarks.gpu.validate.summary import warm_path_summary
from benchmarks.gpu.validate.warm_path import question, warm_rows


def _sample(ttft_s: float) -> dict:
    return {"status": 200, "ttft_s": ttft_s, "total_s": ttft_s + 0.1, "events": 9, "headers": {},
            "server_timing_ms": {"route": 0.1, "vllm_prefill": ttft_s * 500}}


def _arm(cold: float | None, warm: list[float]) -> dict:
    return {"cold": _sample(cold) if cold else None, "warm": [_sample(t) for t in warm]}


def test_rows_are_warm_medians_against_vllm_serve():
    data = {"card": "NVIDIA H100 80GB HBM3", "modes": {"128000": "shared"},
            "documents": {"128000": {"prefix_tokens": 128031}},
            "samples": {"128000": {"ours": _arm(10.6, [0.30, 0.10, 0.12]), "vllm_serve": _arm(10.4, [0.10, 0.08, 0.5]),
                                   "ours_completions": _arm(None, [0.2, 0.2, 0.2])}}}
    (row,) = warm_rows(data)
    assert (row["tokens"], row["ours_s"], row["vllm_serve_s"], row["card"]) == (128000, 0.12, 0.10, data["card"])
    assert abs(row["ratio"] - 1.2) < 1e-9 and abs(row["ours_completions_ratio"] - 2.0) < 1e-9
    assert row["ours_direct_ingress_s"] is None and row["questions"] == 3
    assert (row["mode"], row["prefix_tokens"], row["cold_ours_s"]) == ("shared", 128031, 10.6)
    # Where the warm questions' time went, by our server's own spans (medians).
    assert row["ours_server_timing_ms"] == {"route": 0.1, "vllm_prefill": 60.0}


def test_vllm_serve_is_asked_what_our_ask_is_and_every_other_arm_a_new_question():
    assert question(3, "vllm_serve") == question(3, "ours")
    assert len({question(3, arm) for arm in ("ours", "ours_direct_ingress", "ours_completions")}) == 3
    assert question(3, "ours") != question(4, "ours")


def test_a_length_run_in_two_commands_is_one_row_per_card(tmp_path):
    def write(name, card, arms):
        (tmp_path / name).write_text(json.dumps({"card": card, "modes": {"400000": "alone"},
                                                 "samples": {"400000": arms}}))

    write("warm_path-400k-vllm_serve.json", "H100", {"vllm_serve": _arm(80.0, [0.2, 0.2])})
    write("warm_path-400k-ours.json", "H100", {"ours": _arm(81.0, [0.3, 0.3])})
    write("warm_path-400k.json", "H200", {"ours": _arm(70.0, [0.25]), "vllm_serve": _arm(70.0, [0.25])})
    (tmp_path / "short_overhead_http.json").write_text(json.dumps({"card": "H100", "short_overhead_http": [
        {"path": "proxy", "ours_ms": 30.0, "vllm_serve_ms": 25.0, "ratio": 1.2, "card": "H100"}]}))
    rows, overhead = warm_path_summary(tmp_path)
    assert [(r["card"], r["tokens"], round(r["ratio"], 9)) for r in rows] == [("H100", 400000, 1.5), ("H200", 400000, 1.0)]
    assert overhead == [{"path": "proxy", "ours_ms": 30.0, "vllm_serve_ms": 25.0, "ratio": 1.2, "card": "H100",
                         "file": "short_overhead_http.json"}]
    assert warm_path_summary(argparse.Namespace(results=tmp_path / "none").results) == (None, None)
