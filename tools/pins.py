"""Pin sets for the GPU install path: resolve them, download them, carry them.

Three verbs, one per step of getting the stack onto a GPU machine:

- ``resolve SET``: a real pip resolve of the set's requirements for every
  supported CPython on manylinux x86_64, written as one constraints file.
  Regenerate with ``make pins`` (or ``python tools/pins.py resolve gpu``).
- ``wheelhouse SET --python 3.12 --out DIR``: every wheel of the set for one
  Python, so ``make install WHEELHOUSE=DIR`` needs no network (air-gapped GPU
  clusters). ``--exclude``/``--exclude-file`` leave out what the target image
  already has (torch and the CUDA libraries are gigabytes).
- ``bundle DIR --out PARTS``: the wheelhouse unpacked into one site folder,
  pruned, gzipped and split into parts small enough for a size-limited
  transfer; ``cat PARTS/part.* | tar -xz -C SITE`` restores it.

Why pip and not uv/pip-tools: the resolve must match what a user's pip does,
``--python-version``/``--platform`` let one machine resolve for others, and
``--report`` gives the exact set without installing anything.
"""
from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUPPORTED_PYTHONS = ("3.11", "3.12")
# Some wheels exist for one manylinux tag only (nvidia-nccl-cu13 2.29.7:
# manylinux_2_18 alone), and pip matches --platform tags exactly: list them all.
MANYLINUX_TAGS = tuple(f"manylinux_2_{n}_x86_64" for n in range(17, 40)) + ("manylinux2014_x86_64",)
# pip takes --platform/--python-version with `install --dry-run` from 23.3 on
# (pypa/pip#12215); older ones demand --target. `make wheelhouse` and
# `make pins` bring a pip of their own (build/tools-venv) for that reason.
MIN_PIP = (23, 3)


@dataclass(frozen=True)
class PinSet:
    """One supported combination: Ray (which pins its vLLM) plus our requirements."""

    ray: str
    constraints: str
    requirements: tuple[str, ...] = ("requirements-gpu.txt", "requirements-test.txt")
    # What the image/wheelhouse needs to serve; tests are for `make test`.
    serve_requirements: tuple[str, ...] = ("requirements-gpu.txt",)


PIN_SETS = {
    # Production: Ray 2.60 with the vLLM it pins (0.29.0, torch 2.13).
    "gpu": PinSet(ray="2.60.0", constraints="constraints-gpu.txt"),
    # Compatibility: Ray 2.58 pins vLLM 0.26.0 (torch 2.11), for older
    # ray-llm images and machines whose torch is 2.11.
    "gpu-ray2.58": PinSet(ray="2.58.1", constraints="constraints-gpu-ray2.58.txt"),
}

# Parts of wheels a serving run never loads, dropped from bundles only (never
# from wheelhouses, which pip installs whole): Ampere-only or SM100-only
# kernels, Ray's Java jars and RLlib, vLLM's Rust router.
DEFAULT_PRUNE = (
    "vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so",
    "vllm/_moe_C_stable_libtorch.abi3.so",
    "vllm/vllm-rs",
    "vllm/third_party/deep_gemm",
    "vllm/third_party/fmha_sm100",
    "ray/jars",
    "ray/rllib",
)


def _pip_env() -> dict[str, str]:
    # A user's pip reads PyPI; this machine's pip config adds local mirrors
    # and caps. The committed pins must not depend on either.
    keep = {"PIP_CERT", "PIP_DEFAULT_TIMEOUT", "PIP_PROXY"}  # how to reach PyPI, not what to take
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k in keep}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def pip_too_old(version: str) -> str | None:
    """Why a pip of this version cannot resolve for another platform, naming the pip it needs; None if it can."""
    found = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
    if found >= MIN_PIP:
        return None
    need = ".".join(map(str, MIN_PIP))
    return (f"tools/pins.py needs pip >= {need} (`pip install --dry-run` with --platform), but {sys.executable} "
            f"has pip {version}. Run it through `make wheelhouse` or `make pins`, which make build/tools-venv "
            f"with a current pip, or upgrade: {sys.executable} -m pip install --upgrade 'pip>={need}'")


def require_resolving_pip() -> None:
    """Stop with a clear message, before pip's own, when the running pip is too old to resolve for a target."""
    from importlib.metadata import version

    problem = pip_too_old(version("pip"))
    if problem:
        sys.exit(problem)


def _target_args(python: str) -> list[str]:
    args = ["--only-binary=:all:", "--python-version", python, "--implementation", "cp"]
    for tag in MANYLINUX_TAGS:
        args += ["--platform", tag]
    return args


def _requirement_args(files: tuple[str, ...]) -> list[str]:
    return [arg for f in files for arg in ("-r", str(ROOT / f))]


def resolve_report(pin_set: PinSet, python: str, files: tuple[str, ...],
                   constraints: Path | None = None) -> dict[str, str]:
    """Run pip's resolver for one Python; return {canonical name: version}."""
    require_resolving_pip()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
               *_target_args(python), "--report", str(report), *_requirement_args(files),
               f"ray[serve,llm]=={pin_set.ray}"]
        if constraints is not None:
            cmd += ["-c", str(constraints)]
        print(f"resolving for CPython {python}: ray {pin_set.ray} + {', '.join(files)}", flush=True)
        subprocess.run(cmd, check=True, env=_pip_env())
        installs = json.loads(report.read_text())["install"]
    return {_canonical(i["metadata"]["name"]): i["metadata"]["version"] for i in installs}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def render_constraints(name: str, by_python: dict[str, dict[str, str]]) -> str:
    """One file for every Python: a package whose pin differs gets markers."""
    lines = [
        f"# Pin set '{name}': a pip resolve for CPython {', '.join(by_python)} on manylinux x86_64.",
        f"# Regenerate: python tools/pins.py resolve {name}   (or: make pins)",
    ]
    names = sorted(set().union(*by_python.values()))
    for pkg in names:
        versions = {py: pins.get(pkg) for py, pins in by_python.items()}
        distinct = set(versions.values())
        if len(distinct) == 1:
            lines.append(f"{pkg}=={distinct.pop()}")
            continue
        for py, version in versions.items():
            if version is not None:
                lines.append(f'{pkg}=={version}; python_version == "{py}"')
    return "\n".join(lines) + "\n"


def cmd_resolve(args: argparse.Namespace) -> None:
    pin_set = PIN_SETS[args.set]
    by_python = {py: resolve_report(pin_set, py, pin_set.requirements) for py in args.python}
    out = ROOT / pin_set.constraints
    out.write_text(render_constraints(args.set, by_python))
    print(f"wrote {out.relative_to(ROOT)}: {len(set().union(*by_python.values()))} packages")


def read_exclusions(patterns: list[str], files: list[Path]) -> list[str]:
    """Glob patterns of canonical names; a file holds one name per line
    (`pip freeze` output works: anything after ==, @ or ; is ignored)."""
    found = [_canonical(p) for p in patterns]
    for f in files:
        for line in f.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                found.append(_canonical(re.split(r"[=<>@; ]", line, maxsplit=1)[0]))
    return found


def cmd_wheelhouse(args: argparse.Namespace) -> None:
    pin_set = PIN_SETS[args.set]
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    pins = resolve_report(pin_set, args.python, pin_set.serve_requirements, ROOT / pin_set.constraints)
    exclusions = read_exclusions(args.exclude, [Path(f) for f in args.exclude_file])
    kept = {n: v for n, v in pins.items() if not any(fnmatch.fnmatch(n, p) for p in exclusions)}
    left_out = sorted(set(pins) - set(kept))
    print(f"{len(pins)} packages resolved, {len(left_out)} left out (the target has them), "
          f"{len(kept)} to download", flush=True)
    specs = [f"{n}=={v}" for n, v in sorted(kept.items())]
    if specs:  # pip download refuses an empty list: a target that has everything needs only our wheel
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        *_target_args(args.python), "-d", str(out), *specs], check=True, env=_pip_env())
    # Our own package as a wheel: its dist-info carries the vLLM plugin entry
    # point that vLLM's engine subprocesses look up.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(ROOT)], check=True, env=_pip_env())
    (out / "requirements.txt").write_text("\n".join(specs + ["longctx-cluster"]) + "\n")
    (out / "excluded.txt").write_text("".join(f"{n}=={pins[n]}\n" for n in left_out))
    manifest = {"set": args.set, "ray": pin_set.ray, "python": args.python, "packages": kept,
                "excluded": {n: pins[n] for n in left_out}}
    (out / "wheelhouse.json").write_text(json.dumps(manifest, indent=2) + "\n")
    size = sum(p.stat().st_size for p in out.glob("*.whl"))
    print(f"wheelhouse {out}: {len(list(out.glob('*.whl')))} wheels, {size / 2**20:.0f} MiB")


def cmd_bundle(args: argparse.Namespace) -> None:
    house = Path(args.wheelhouse).resolve()
    manifest = json.loads((house / "wheelhouse.json").read_text())
    out = Path(args.out).resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        # --target with the wheelhouse's Python/platform unpacks wheels built
        # for another interpreter (cp312 here on a cp311 machine) without running them.
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
                        "--no-compile", "--target", str(site), *_target_args(manifest["python"]),
                        *map(str, sorted(house.glob("*.whl")))], check=True, env=_pip_env())
        for rel in args.prune:
            path = site / rel
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        archive = Path(tmp) / "site.tar.gz"
        print(f"packing {site} ...", flush=True)
        with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
            tar.add(site, arcname=".")
        parts = split_file(archive, out, args.part_mb * 10**6)
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.read_bytes())
    (out / "bundle.json").write_text(json.dumps({
        **{k: manifest[k] for k in ("set", "ray", "python")},
        "parts": [p.name for p in parts], "sha256": digest.hexdigest(),
        "restore": "cat part.* | tar -xz -C SITE && export PYTHONPATH=SITE",
    }, indent=2) + "\n")
    total = sum(p.stat().st_size for p in parts)
    print(f"bundle {out}: {len(parts)} parts, {total / 2**20:.0f} MiB")


def split_file(path: Path, out: Path, part_bytes: int) -> list[Path]:
    parts = []
    with path.open("rb") as src:
        while chunk := src.read(part_bytes):
            part = out / f"part.{len(parts):02d}"
            part.write_bytes(chunk)
            parts.append(part)
    return parts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True)
    resolve = verbs.add_parser("resolve", help="resolve a pin set into its constraints file")
    resolve.add_argument("set", choices=sorted(PIN_SETS))
    resolve.add_argument("--python", nargs="+", default=list(SUPPORTED_PYTHONS))
    resolve.set_defaults(func=cmd_resolve)
    house = verbs.add_parser("wheelhouse", help="download every wheel of a pin set for one Python")
    house.add_argument("set", choices=sorted(PIN_SETS))
    house.add_argument("--python", default="3.12", choices=SUPPORTED_PYTHONS)
    house.add_argument("--out", required=True)
    house.add_argument("--exclude", nargs="*", default=[], help="glob of package names the target already has")
    house.add_argument("--exclude-file", nargs="*", default=[], help="files of names (pip freeze works)")
    house.set_defaults(func=cmd_wheelhouse)
    bundle = verbs.add_parser("bundle", help="unpack, prune, pack and split a wheelhouse for carrying")
    bundle.add_argument("wheelhouse")
    bundle.add_argument("--out", required=True)
    bundle.add_argument("--part-mb", type=int, default=56)
    bundle.add_argument("--prune", nargs="*", default=list(DEFAULT_PRUNE))
    bundle.set_defaults(func=cmd_bundle)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
