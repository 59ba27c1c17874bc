"""The Dockerfiles, read statically: pinned slim base, non-root, dependencies before code,
and a CMD whose module exists and whose first-party imports are all copied into the image."""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import json
import re
import tomllib
from pathlib import Path

import pytest
from stack_harness import ROOT, load_compose

DOCKER_DIR = ROOT / "docker"
FIRST_PARTY = {"svckit", "dm", "llm_local", "gateway", "voicectl"}
SLIM_PYTHON = re.compile(r"^python:3\.11\.\d+-slim-\w+$")
DOCKERFILES = sorted(DOCKER_DIR.glob("*.Dockerfile"))


def instructions(path: Path) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in path.read_text("utf-8").splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            logical.append(pending.strip())
            pending = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def final_stage(path: Path) -> list[tuple[str, str]]:
    steps = instructions(path)
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def cmd_module(path: Path) -> str:
    (cmd,) = [args for keyword, args in final_stage(path) if keyword == "CMD"]
    argv = json.loads(cmd)
    assert argv[:2] == ["python", "-m"], "exec form, python -m <module>"
    module: str = argv[2]
    return module


def copied_packages(path: Path) -> dict[str, Path]:
    """Package name in the image → its directory in the repository."""
    packages = {}
    for keyword, args in final_stage(path):
        if keyword == "COPY" and args.startswith("services/"):
            source, target = args.split()
            packages[Path(target).name] = ROOT / source
    return packages


def first_party_imports(package_dir: Path) -> set[str]:
    found = set()
    for source in package_dir.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text("utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            found |= {name.split(".")[0] for name in names} & FIRST_PARTY
    return found


def test_there_is_a_dockerfile_per_built_service() -> None:
    built = {
        name: service["build"]["dockerfile"]
        for name, service in load_compose()["services"].items()
        if "build" in service
    }
    assert built == {
        "llm-local": "docker/llm-local.Dockerfile",
        "dm": "docker/dm.Dockerfile",
        "gateway": "docker/gateway.Dockerfile",
    }
    assert {path.name for path in DOCKERFILES} == {Path(p).name for p in built.values()}
    for name, dockerfile in built.items():
        assert cmd_module(ROOT / dockerfile) == name.replace("-", "_")


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_base_images_are_pinned_slim_python(path: Path) -> None:
    for keyword, args in instructions(path):
        if keyword == "FROM":
            assert SLIM_PYTHON.match(args.split()[0]), args


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_runs_as_a_non_root_user_with_a_healthcheck(path: Path) -> None:
    stage = final_stage(path)
    keywords = [keyword for keyword, _ in stage]
    (user,) = [args for keyword, args in stage if keyword == "USER"]
    assert user not in ("root", "0")
    assert keywords.index("USER") < keywords.index("CMD")
    assert any("useradd" in args and user in args for keyword, args in stage if keyword == "RUN")
    (healthcheck,) = [args for keyword, args in stage if keyword == "HEALTHCHECK"]
    assert "CMD" in healthcheck


LOCKED_INSTALL = "pip install --no-deps --require-hashes -r requirements.txt"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dependencies_install_as_locked_before_the_code_is_copied(path: Path) -> None:
    stage = final_stage(path)
    install = next(
        i for i, (keyword, args) in enumerate(stage) if keyword == "RUN" and LOCKED_INSTALL in args
    )
    (copied,) = [
        args.split()[0]
        for keyword, args in stage[:install]
        if keyword == "COPY" and args.endswith("requirements.txt")
    ]
    assert copied.startswith("requirements/")
    first_code = next(
        i for i, (keyword, args) in enumerate(stage) if keyword == "COPY" and "services/" in args
    )
    assert install < first_code
    # Nothing else is installed with its dependencies unpinned.
    for keyword, args in stage:
        if keyword == "RUN" and "pip install" in args:
            assert "--no-deps" in args, args


@pytest.mark.parametrize(
    ("image", "requirements"),
    [("dm", "runtime.txt"), ("gateway", "runtime.txt"), ("llm-local", "llm-local.txt")],
)
def test_images_carry_no_development_tools(image: str, requirements: str) -> None:
    steps = final_stage(DOCKER_DIR / f"{image}.Dockerfile")
    assert any(
        f"requirements/{requirements}" in args for keyword, args in steps if keyword == "COPY"
    )
    pinned = {
        line.split("==")[0].lower()
        for line in (ROOT / "requirements" / requirements).read_text("utf-8").splitlines()
        if "==" in line
    }
    dev_tools = {"pytest", "pytest-asyncio", "pytest-timeout", "mypy", "ruff", "hypothesis"}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    assert all(
        any(tool in spec for spec in pyproject["dependency-groups"]["dev"]) for tool in dev_tools
    )
    assert not pinned & dev_tools


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_cmd_module_exists_and_its_imports_are_in_the_image(path: Path) -> None:
    module = cmd_module(path)
    assert importlib.util.find_spec(f"{module}.__main__") is not None
    packages = copied_packages(path)
    assert module in packages
    for name, directory in packages.items():
        assert (directory / "__init__.py").is_file(), f"{directory} is package {name}"
    needed = set()
    todo = [module]
    while todo:
        package = todo.pop()
        if package in needed:
            continue
        needed.add(package)
        todo += first_party_imports(packages.get(package, ROOT / "missing"))
    assert needed <= set(packages), f"{path.name} misses {needed - set(packages)}"


def test_llama_cpp_python_is_built_in_a_builder_stage_from_the_locked_sdist() -> None:
    path = DOCKER_DIR / "llm-local.Dockerfile"
    steps = instructions(path)
    froms = [args for keyword, args in steps if keyword == "FROM"]
    assert len(froms) == 2
    assert froms[0].endswith(" AS llama-build")
    builder = " ".join(args for _, args in steps[: steps.index(("FROM", froms[1]))])
    assert "requirements/llama.txt" in builder
    assert "--require-hashes" in builder
    assert "PIP_CONSTRAINT=/build/llama-build.txt" in builder
    # The runtime stage installs the wheel and has no compiler.
    runtime = " ".join(args for _, args in final_stage(path))
    assert "from=llama-build" in runtime
    assert "build-essential" not in runtime


def test_dockerignore_lets_in_exactly_what_the_images_copy() -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def included(path: str) -> bool:
        verdict = True
        for rule in rules:
            negated = rule.startswith("!")
            pattern = rule.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
                verdict = negated
        return verdict

    for path in DOCKERFILES:
        for keyword, args in instructions(path):
            if keyword == "COPY" and not args.startswith("--from"):
                for source in args.split()[:-1]:
                    assert included(source), f"{path.name}: .dockerignore drops {source}"
    for private in (".env", ".venv/bin/python", ".run/redis-6379/appendonlydir", "models/x.gguf"):
        assert not included(private)
