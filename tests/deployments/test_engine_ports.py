"""Engine port slots: disjoint windows on one node, freed when a replica dies."""

import subprocess
import sys

import pytest

from deployments.engine_ports import WINDOW, NoPortSlotError, claim_port_slot


def test_concurrent_claims_get_disjoint_port_windows(tmp_path):
    first, second = claim_port_slot(tmp_path), claim_port_slot(tmp_path)
    assert first.index != second.index
    assert abs(first.first_port - second.first_port) >= WINDOW
    assert first.engine_env()["VLLM_DP_MASTER_PORT"] != second.engine_env()["VLLM_DP_MASTER_PORT"]
    # vLLM 0.26 probes from VLLM_DP_MASTER_PORT + 100: inside the slot's window.
    assert int(first.engine_env()["VLLM_DP_MASTER_PORT"]) + 100 == first.first_port


def test_a_released_slot_is_claimed_again(tmp_path):
    slot = claim_port_slot(tmp_path)
    slot.release()
    assert claim_port_slot(tmp_path).index == slot.index


def test_slot_of_an_exited_process_is_free_and_a_live_ones_is_not(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from deployments.engine_ports import claim_port_slot;"
         f"s = claim_port_slot(Path({str(tmp_path)!r})); print(s.index, flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        held = int(holder.stdout.readline())
        assert claim_port_slot(tmp_path).index != held
    finally:
        holder.kill()
        holder.wait()
    # Killed, not released: the kernel dropped its lock.
    assert claim_port_slot(tmp_path, slots=held + 1).index == held


def test_full_node_is_a_clear_error(tmp_path):
    claim_port_slot(tmp_path, slots=1)
    with pytest.raises(NoPortSlotError, match="all 1 engine port slots"):
        claim_port_slot(tmp_path, slots=1)
