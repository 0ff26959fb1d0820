"""The environment is one lock: pyproject's ranges, uv.lock's pins and environment.yml agree."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
LOCK = tomllib.loads((ROOT / "uv.lock").read_text())


def locked_versions() -> dict[str, set[str]]:
    """Every version uv.lock holds per package (one per Python version where they differ)."""
    versions: dict[str, set[str]] = {}
    for package in LOCK["package"]:
        versions.setdefault(canonicalize_name(package["name"]), set()).add(package["version"])
    return versions


def conda_pins() -> list[Requirement]:
    """The `name==version` lines of environment.yml's pip section."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    return [Requirement(line) for line in pip if not line.startswith("-")]


def test_python_3_11_to_3_13_are_admitted_and_locked() -> None:
    allowed = SpecifierSet(PYPROJECT["requires-python"])
    assert all(f"{v}.0" in allowed for v in ("3.11", "3.12", "3.13"))
    assert "3.10.0" not in allowed
    assert SpecifierSet(LOCK["requires-python"]) == allowed


def test_every_package_in_the_lock_has_hashes() -> None:
    for package in LOCK["package"]:
        if "registry" not in package["source"]:
            continue  # the project itself
        files = package.get("wheels", []) + ([package["sdist"]] if "sdist" in package else [])
        assert files and all(f["hash"].startswith("sha256:") for f in files), package["name"]


def test_the_lock_covers_every_declared_dependency_and_extra() -> None:
    locked = locked_versions()
    declared = PYPROJECT["dependencies"] + [
        dep for extra in PYPROJECT["optional-dependencies"].values() for dep in extra
    ]
    for line in declared:
        req = Requirement(line)
        versions = locked.get(canonicalize_name(req.name), set())
        assert any(v in req.specifier for v in versions), f"{req} is not in uv.lock: run make lock"


def test_environment_yml_pins_the_locked_versions() -> None:
    locked = locked_versions()
    pins = conda_pins()
    for pin in pins:
        (spec,) = pin.specifier
        assert spec.operator == "==", pin
        assert spec.version in locked.get(canonicalize_name(pin.name), set()), (
            f"environment.yml pins {pin.name} {spec.version}, uv.lock does not: run make lock"
        )
    pinned = {canonicalize_name(pin.name) for pin in pins}
    direct = PYPROJECT["dependencies"] + PYPROJECT["optional-dependencies"]["dev"]
    missing = {canonicalize_name(Requirement(line).name) for line in direct} - pinned
    assert not missing, f"environment.yml does not pin {sorted(missing)}: run make lock"


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_help_shows_real_values() -> None:
    done = subprocess.run(
        ["make", "--no-print-directory", "help", "PORT=8123"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "http://127.0.0.1:8123" in done.stdout
    assert not re.search(r"\$\(\w+\)", done.stdout), done.stdout
