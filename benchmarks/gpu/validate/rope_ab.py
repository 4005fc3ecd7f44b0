"""InternLM3 past its native window: our engine against stock vLLM's rope variants, with the GPU's clock.

Stock vLLM's dynamic NTK rope keeps a cos/sin cache of the native 32,768
rows, so from position 32,768 on its rotary kernel reads whatever memory
follows the cache: a wrong answer, and, it turns out, a cheaper one. Through a
long prefill the H200 sits at its 700 W power cap, so its SM clock follows how
much power the data draws; the same kernels on other values run at another
clock. The arms below tell the two apart: stock with a linear rope has a
full cache of real rotary values and no code of ours, and it runs exactly as
fast as our engine. device.sh's nvidia-smi samples (GPU_SAMPLE_MS, in
``logs/<run>.gpu.csv``) give each prefill's median SM clock and power.
"""

from __future__ import annotations

import csv
import json
import re
import statistics
from datetime import datetime, timezone
from pathlib import Path

# (stage file and run name, machine, what ran). Machines are numbered in the
# order they were lent; the arms of one machine ran back to back, in this order.
ARMS = (
    ("internlm3-stock-rope-plugin", 1, "stock vLLM with our RoPE plugin (196,607 cut off by the device budget)"),
    ("internlm3-stock-again", 1, "stock vLLM"),
    ("internlm3-ab-plugin", 2, "stock vLLM with our RoPE plugin: our engine without the serving layers"),
    ("internlm3-ab-stock", 2, "stock vLLM: a cache of 32,768 rows, positions past it read other memory"),
    ("internlm3-ab-linear", 2, "stock vLLM, linear rope x6 over 196,608 rows (the override dropped rope_theta: "
                               "base 10,000)"),
    ("internlm3-ab-linear-theta", 2, "stock vLLM, linear rope x6 over 196,608 rows, base 5e7: real rotary values "
                                     "at every position"),
    ("internlm3-ab-stock-2", 2, "stock vLLM again"),
    ("internlm3-ab-ours", 3, "our full stack through the HTTP API (serve stage)"),
    ("internlm3-ab2-stock", 3, "stock vLLM"),
    ("internlm3-ab2-linear-theta", 3, "stock vLLM, linear rope x6 over 196,608 rows, base 5e7"),
)
OURS, STOCK, CORRECT_STOCK = "internlm3-ab-ours", "internlm3-ab2-stock", "internlm3-ab2-linear-theta"
# The stock stage's progress line, for runs from before prefill rows kept their start time.
_STOCK_LINE = re.compile(r"\[validate (\d\d:\d\d:\d\d)\] stock prefill ([\d,]+): ([\d.]+) s")


def read_samples(path: Path) -> list[tuple[float, int, float]]:
    """(unix time, SM clock MHz, power W) per nvidia-smi sample; the GPU machine keeps UTC."""
    with path.open() as f:
        rows = list(csv.reader(f, skipinitialspace=True))[1:]
    return [(datetime.strptime(r[0], "%Y/%m/%d %H:%M:%S.%f").replace(tzinfo=timezone.utc).timestamp(),
             int(r[1].split()[0]), float(r[2].split()[0])) for r in rows if len(r) >= 3]


def _seconds(row: dict) -> float | None:
    """A prefill row's duration: the stock stage's engine time, or the serve stage's TTFT through HTTP."""
    return row.get("stock_s") or row.get("ttft_s")


def prefill_windows(stage: dict, log: Path) -> dict[int, tuple[float, float]]:
    """tokens -> (start, seconds) of each prefill: from the row, else from the log line that ends it."""
    windows = {}
    for row in stage.get("prefill", []):
        seconds = _seconds(row)
        if row.get("started_unix") and seconds:
            windows[row["tokens"]] = (row["started_unix"], seconds)
    if not windows and log.exists():
        day = stage["started"][:10]
        for clock, tokens, seconds in _STOCK_LINE.findall(log.read_text()):
            # The line's time is truncated to the second: the prefill ended within it.
            end = datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=timezone.utc).timestamp() + 0.5
            windows[int(tokens.replace(",", ""))] = (end - float(seconds), float(seconds))
    return windows


def arm_rows(results: Path) -> list[dict]:
    """Every arm that has a stage file: its rotary and, per prefill, seconds with median clock and power."""
    arms = []
    for name, machine, what in ARMS:
        path = results / f"{name}.json"
        if not path.exists():
            continue
        stage = json.loads(path.read_text())
        csv_path = results / "logs" / f"{name}.gpu.csv"
        samples = read_samples(csv_path) if csv_path.exists() else []
        windows = prefill_windows(stage, results / "logs" / f"{name}.log")
        prefill = []
        for row in stage.get("prefill", []):
            seconds = _seconds(row)
            start, span = windows.get(row["tokens"], (None, None))
            inside = [] if start is None else [s for s in samples if start <= s[0] <= start + span]
            prefill.append({
                "tokens": row["tokens"], "seconds": round(seconds, 2),
                "sm_clock_mhz": statistics.median(s[1] for s in inside) if inside else None,
                "power_w": round(statistics.median(s[2] for s in inside), 1) if inside else None,
                "samples": len(inside),
            })
        arms.append({"arm": name, "machine": machine, "what": what, "rope_plugin": stage.get("rope_plugin"),
                     "rotary": stage.get("rotary"), "prefill": prefill})
    return arms


def ours_against_stock(arms: list[dict]) -> list[dict]:
    """Per size, on one machine: ours against stock as it is, and against stock with a correct rope."""
    by_arm = {a["arm"]: {r["tokens"]: r for r in a["prefill"]} for a in arms}
    if not {OURS, STOCK, CORRECT_STOCK} <= by_arm.keys():
        return []
    rows = []
    for tokens, ours in by_arm[OURS].items():
        stock, correct = by_arm[STOCK].get(tokens), by_arm[CORRECT_STOCK].get(tokens)
        if not (stock and correct):
            continue
        rows.append({
            "tokens": tokens, "ours_s": ours["seconds"], "stock_s": stock["seconds"],
            "stock_correct_rope_s": correct["seconds"],
            "ratio_vs_stock": round(stock["seconds"] / ours["seconds"], 3),
            "ratio_vs_stock_correct_rope": round(correct["seconds"] / ours["seconds"], 3),
            "sm_clock_mhz": {"ours": ours["sm_clock_mhz"], "stock": stock["sm_clock_mhz"],
                             "stock_correct_rope": correct["sm_clock_mhz"]},
            "power_w": {"ours": ours["power_w"], "stock": stock["power_w"],
                        "stock_correct_rope": correct["power_w"]},
        })
    return rows


def summarize(results: Path) -> dict | None:
    """summary.json's ``internlm3.rope_ab``: ours against stock per size, and every arm; None without arms."""
    arms = arm_rows(results)
    return {"ours_against_stock": ours_against_stock(arms), "arms": arms} if arms else None
