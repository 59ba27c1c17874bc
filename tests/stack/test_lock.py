"""What is installed is what uv.lock pins: no package unpinned, missing or extra."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tomllib
from typing import Any

from packaging.markers import Marker
from stack_harness import ROOT

LOCK = tomllib.loads((ROOT / "uv.lock").read_text("utf-8"))
PROJECT = "voice-dm"
# Put in every venv by `python -m venv` itself; uv keeps them, whatever the lock says.
SEED = {"pip", "setuptools"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def marker_holds(entry: dict[str, Any]) -> bool:
    marker = entry.get("marker")
    return marker is None or Marker(marker).evaluate()


def expected_here() -> dict[str, str]:
    """name -> version of every package the lock installs on this machine: the project's
    dependencies, all its extras and its dev group, followed through the graph."""
    packages: dict[str, list[dict[str, Any]]] = {}
    for package in LOCK["package"]:
        packages.setdefault(package["name"], []).append(package)
    root = packages[PROJECT][0]
    todo = [
        *root.get("dependencies", []),
        *(dep for deps in root.get("optional-dependencies", {}).values() for dep in deps),
        *(dep for deps in root.get("dev-dependencies", {}).values() for dep in deps),
    ]
    found: dict[str, str] = {}
    seen: set[tuple[str, str, tuple[str, ...]]] = set()
    while todo:
        dep = todo.pop()
        if not marker_holds(dep):
            continue
        candidates = packages[dep["name"]]
        if "version" in dep:
            candidates = [p for p in candidates if p["version"] == dep["version"]]
        (package,) = candidates
        key = (package["name"], package["version"], tuple(dep.get("extra", [])))
        if key in seen:
            continue
        seen.add(key)
        if canonical(package["name"]) not in SEED:
            found[canonical(package["name"])] = package["version"]
        todo += package.get("dependencies", [])
        for extra in dep.get("extra", []):
            todo += package.get("optional-dependencies", {}).get(extra, [])
    return found


def installed() -> dict[str, str]:
    return {
        canonical(dist.metadata["Name"]): dist.version
        for dist in importlib.metadata.distributions()
        if canonical(dist.metadata["Name"]) not in SEED | {PROJECT}
    }


def test_every_installed_package_is_the_locked_version() -> None:
    locked = expected_here()
    assert "pytest" in locked
    assert "llama-cpp-python" in locked
    have = installed()
    unpinned = {name: version for name, version in have.items() if name not in locked}
    assert not unpinned, f"installed but not in uv.lock: {unpinned}"
    wrong = {
        name: (version, locked[name]) for name, version in have.items() if locked[name] != version
    }
    assert not wrong, f"installed version differs from uv.lock (installed, locked): {wrong}"
    missing = sorted(set(locked) - set(have))
    assert not missing, f"in uv.lock but not installed: {missing}"


def test_lock_and_requirements_files_are_in_step_with_pyproject() -> None:
    done = subprocess.run(
        [sys.executable, "scripts/lock.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
