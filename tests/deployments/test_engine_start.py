"""The node's engine-start lock: one holder at a time, across processes, freed by exit."""

import asyncio
import subprocess
import sys
import time

from deployments.engine_start import engine_start_lock

HOLD = (
    "import asyncio, sys, time; from pathlib import Path;"
    "from deployments.engine_start import engine_start_lock\n"
    "async def main():\n"
    "    async with engine_start_lock(Path(sys.argv[1])):\n"
    "        print('held', flush=True); time.sleep(float(sys.argv[2]))\n"
    "asyncio.run(main())\n"
)


def test_a_second_engine_waits_for_the_first(tmp_path):
    lock = tmp_path / "start.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock), "1.5"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"

        async def acquire() -> float:
            started = time.monotonic()
            async with engine_start_lock(lock):
                return time.monotonic() - started

        waited = asyncio.run(acquire())
        # It got the lock only once the holder's sleep ended and it exited.
        assert holder.wait(timeout=10) == 0
        assert waited > 0.5
    finally:
        holder.kill()


def test_a_killed_holder_frees_the_lock(tmp_path):
    lock = tmp_path / "start.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock), "60"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()

    async def acquire():
        async with engine_start_lock(lock):
            return True

    assert asyncio.run(asyncio.wait_for(acquire(), timeout=10))


def test_waiting_does_not_block_the_event_loop(tmp_path):
    lock = tmp_path / "start.lock"

    async def scenario():
        ticks = 0
        async with engine_start_lock(lock):
            waiter = asyncio.create_task(_enter(lock))
            for _ in range(5):
                await asyncio.sleep(0.02)
                ticks += 1
            assert not waiter.done()
        await asyncio.wait_for(waiter, timeout=5)
        return ticks

    assert asyncio.run(scenario()) == 5


async def _enter(lock):
    async with engine_start_lock(lock):
        pass


def test_only_engines_that_take_a_gpu_start_one_at_a_time():
    from deployments.engine_start import starts_one_at_a_time

    assert starts_one_at_a_time([{"CPU": 1, "GPU": 1}])
    assert starts_one_at_a_time([{"CPU": 1}, {"GPU": 0.4}])  # engines sharing a GPU
    assert not starts_one_at_a_time([{"CPU": 2}])  # vLLM's CPU backend
    assert not starts_one_at_a_time([{"CPU": 1, "GPU": 0}, {"CPU": 1}])
