"""Installing the package into an empty venv (`pip install .`) is how people without the
Makefile get Watchgate (README, pipx): the wheel must carry every module and the ranges in
pyproject.toml must resolve."""

from __future__ import annotations

import shutil
import subprocess
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UV = REPO / ".tools" / "bin" / "uv"

pytestmark = pytest.mark.integration


def test_pip_install_into_an_empty_venv_gives_a_working_command(tmp_path: Path) -> None:
    source = tmp_path / "src"  # a copy: building in the clone would leave build/ and egg-info
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "supervisor.yaml"):
        shutil.copy(REPO / name, source / name)
    for package in ("watchgate", "actors"):
        shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    # uv resolves pyproject.toml's ranges as pip does, from the index, and builds the same wheel
    # with the same backend; it is the Makefile's installer, and its cache makes this seconds
    pip = subprocess.run(
        [UV, "pip", "install", "--quiet", "--python", env_dir / "bin/python", str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert pip.returncode == 0, pip.stderr

    watchgate = env_dir / "bin/watchgate"
    version = subprocess.run([watchgate, "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("watchgate "), version
    validate = subprocess.run(
        [watchgate, "validate", "-c", "supervisor.yaml"],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert validate.returncode == 0, validate.stderr
    assert validate.stdout.strip() == "ok: 2 upstream(s) (time, everything)"
