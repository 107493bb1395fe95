"""The layout rules of DEVELOPERS.md: one namespace over top-level folders, no shadowing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL = {
    "encoder": "aioreid.encoder",
    "platform": "aioreid.platform",
    "workers": "aioreid.workers",
    "ui": "aioreid.ui",
}


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_top_level_folders_have_no_init() -> None:
    for folder in TOP_LEVEL:
        assert (ROOT / folder).is_dir(), folder
        assert not (ROOT / folder / "__init__.py").exists(), f"{folder}/__init__.py must not exist"


def test_package_dir_maps_the_namespace() -> None:
    mapping = _pyproject()["tool"]["setuptools"]["package-dir"]
    assert mapping == {v: k for k, v in TOP_LEVEL.items()}


def test_every_source_package_is_listed_for_wheels() -> None:
    """A folder holding Python modules that is not in `packages` would be missing from a wheel."""
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    found = set()
    for folder, dotted in TOP_LEVEL.items():
        for py in (ROOT / folder).rglob("*.py"):
            rel = py.parent.relative_to(ROOT / folder)
            if "__pycache__" in rel.parts:
                continue
            found.add(".".join([dotted, *rel.parts]))
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"


def test_stdlib_platform_is_not_shadowed_from_repo_root() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import platform; print(platform.system())"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() in {"Linux", "Darwin", "Windows"}


def test_namespace_imports_from_outside_the_repo(tmp_path: Path) -> None:
    code = "import aioreid.platform.config, aioreid.encoder.data.records; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_encoder_does_not_import_the_platform() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "encoder").rglob("*.py")
        if "aioreid.platform" in p.read_text() or "aioreid.workers" in p.read_text()
    ]
    assert offenders == []


def test_readme_opens_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text().splitlines()[:10]
    commands = [ln.split("#")[0].strip() for ln in head if ln.startswith("make ")]
    assert commands == ["make demo", "make test"]


def test_ci_runs_make_test() -> None:
    lines = [ln.strip() for ln in (ROOT / ".ci/run").read_text().splitlines()]
    assert "make test" in lines


def _make_test_with_pytest_exiting(code: int, tmp_path: Path) -> subprocess.CompletedProcess:
    fake = tmp_path / "fake-python"
    fake.write_text(f"#!/bin/sh\nexit {code}\n")
    fake.chmod(0o755)
    stamp = tmp_path / "stamp"
    stamp.touch()
    return subprocess.run(
        ["make", "-s", "test", f"PY={fake}", f"STAMP={stamp}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


def test_make_test_treats_no_tests_collected_as_success(tmp_path: Path) -> None:
    assert _make_test_with_pytest_exiting(5, tmp_path).returncode == 0


def test_make_test_never_hides_a_real_failure(tmp_path: Path) -> None:
    for code in (1, 2, 3, 4):
        assert _make_test_with_pytest_exiting(code, tmp_path).returncode != 0, code
