"""``vllm serve`` beside our stack: the peer a user would run instead, with a pool's checkpoint and engine arguments.

The engine arguments are the ones the pool's Ray Serve LLM engine gets
(``deployments.engines.llm_config_for_pool``), turned into ``vllm serve``
flags, so the two cannot drift apart. The server runs as a subprocess in a
session of its own and is stopped with its engine process.

``python -m benchmarks.common.vllm_serve MODEL [FLAGS]`` is ``vllm serve``
itself (vLLM's own serve subcommand and environment set-up); the console
script is not used because vLLM's CPU wheel carries no ``vllm`` package
metadata, which the script reads before parsing a flag.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common.ports import free_loopback_port
from benchmarks.common.progress import progress

REPO = Path(__file__).resolve().parents[2]


def pool_engine_kwargs(cluster, pool) -> dict:
    """The vLLM engine arguments the pool's engine runs with (RoPE overrides included)."""
    from deployments.engines import llm_config_for_pool

    return dict(llm_config_for_pool(cluster, pool).engine_kwargs)


def serve_flags(engine_kwargs: dict) -> list[str]:
    """Engine kwargs as ``vllm serve`` flags: ``--key value``, booleans as ``--key``/``--no-key``, dicts as JSON."""
    flags: list[str] = []
    for key, value in sorted(engine_kwargs.items()):
        if value is None:
            continue
        name = key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(f"--{name}" if value else f"--no-{name}")
        elif isinstance(value, (dict, list)):
            flags += [f"--{name}", json.dumps(value)]
        else:
            flags += [f"--{name}", str(value)]
    return flags


class VllmServe:
    """``with VllmServe(cluster, pool, log_path) as server``: ``vllm serve`` of the pool's model, up; stopped on exit.

    ``plugins`` False (the default) runs stock vLLM (``VLLM_PLUGINS=none``:
    not our RoPE plugin), as a user of ``vllm serve`` would have it.
    """

    def __init__(self, cluster, pool, log_path: Path, *, plugins: bool = False):
        model = cluster.models[pool.model]
        self.engine_kwargs = pool_engine_kwargs(cluster, pool)
        self.port = free_loopback_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.model = pool.model
        self.argv = [str(model.path), "--served-model-name", pool.model, "--host", "127.0.0.1",
                     "--port", str(self.port), *(["--tokenizer", str(model.tokenizer)] if model.tokenizer else []),
                     *serve_flags(self.engine_kwargs)]
        # The engine's environment as the pool's replicas get it, less the
        # GPU share of Ray's workers (vllm serve runs no Ray workers).
        self.env = {**os.environ, **cluster.engine_env, **pool.env, **({} if plugins else {"VLLM_PLUGINS": "none"})}
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        self.plugins = plugins
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.startup_s: float | None = None

    def describe(self) -> dict:
        """What ran: the command line (as ``vllm serve``), the engine arguments, the plugin switch."""
        return {"command": "vllm serve " + " ".join(self.argv), "engine_kwargs": self.engine_kwargs,
                "plugins": "ours" if self.plugins else "none (stock)"}

    def start(self, timeout_s: float = 900) -> "VllmServe":
        import httpx

        started = time.perf_counter()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "benchmarks.common.vllm_serve", *self.argv],
                                        cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        log.close()
        progress(f"vllm serve starting on port {self.port} (log {self.log_path})")
        while time.perf_counter() - started < timeout_s:
            if self.process.poll() is not None:
                raise RuntimeError(f"vllm serve exited {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    self.startup_s = time.perf_counter() - started
                    progress(f"vllm serve up in {self.startup_s:.0f} s")
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(1)
        self.stop()
        raise TimeoutError(f"vllm serve not healthy after {timeout_s} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self, grace_s: float = 30) -> None:
        """SIGINT to the server's session (the API server and its engine core), SIGKILL after ``grace_s``."""
        if self.process is None or self.process.poll() is not None:
            return
        for sig, wait_s in ((signal.SIGINT, grace_s), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(wait_s)
                break
            except subprocess.TimeoutExpired:
                continue
        # The engine core may outlive the API server by a moment: the session goes with it.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        progress("vllm serve stopped")

    def __enter__(self) -> "VllmServe":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str]) -> None:
    """``vllm serve ARGV``: vLLM's serve subcommand, as its console script runs it."""
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.entrypoints.serve.utils.api_utils import cli_env_setup
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    cli_env_setup()
    parser = FlexibleArgumentParser(prog="vllm")
    subcommand = ServeSubcommand()
    subcommand.subparser_init(parser.add_subparsers(dest="subparser")).set_defaults(dispatch_function=subcommand.cmd)
    args = parser.parse_args(["serve", *argv])
    subcommand.validate(args)
    subcommand.cmd(args)


if __name__ == "__main__":
    main(sys.argv[1:])
