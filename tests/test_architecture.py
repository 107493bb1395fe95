"""Imports go one way: encoder ← platform ← workers and ui (docs/architecture.md).

Every module under encoder/, platform/, workers/ and ui/ is parsed with ``ast``; every import
counts, at any depth (one inside a function runs as surely as one at the top, only later).
A failure names the file, the line and the import that breaks a rule.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: top-level folder → the package it is installed as (pyproject's package-dir)
PACKAGES = {
    "encoder": "aioreid.encoder",
    "platform": "aioreid.platform",
    "workers": "aioreid.workers",
    "ui": "aioreid.ui",
}


@dataclass(frozen=True)
class Import:
    file: str  # relative to the repository root
    line: int
    name: str  # the full dotted name imported (``from a import b`` gives ``a.b``)


def module_name(rel: Path) -> tuple[str, bool]:
    """The dotted module name of ``rel`` (a path under a top-level folder) and whether it is
    a package (``__init__.py``)."""
    parts = [PACKAGES[rel.parts[0]], *rel.parts[1:-1]]
    is_package = rel.name == "__init__.py"
    if not is_package:
        parts.append(rel.stem)
    return ".".join(parts), is_package


def imports_in(source: str, file: str, module: str, is_package: bool = False) -> Iterator[Import]:
    """Every import of ``source`` (the module ``module``), relative ones resolved."""
    for node in ast.walk(ast.parse(source, filename=file)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(file, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            for alias in node.names:
                # ``from a import b``: b may be a module (a.b) or a name in a; a.b covers both
                # when rules are prefixes of dotted names.
                name = base if alias.name == "*" else f"{base}.{alias.name}"
                yield Import(file, node.lineno, name)


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@dataclass(frozen=True)
class Rule:
    """Modules matched by ``applies`` may not import names under ``forbidden``; with ``only``,
    their ``aioreid`` imports must all fall under one of those prefixes."""

    name: str
    applies: Callable[[str], bool]  # the file's path relative to the root, as posix
    forbidden: tuple[str, ...] = ()
    only: tuple[str, ...] | None = None
    why: str = ""

    def broken_by(self, imp: Import) -> bool:
        if any(_under(imp.name, p) for p in self.forbidden):
            return True
        if self.only is not None and _under(imp.name, "aioreid"):
            return not any(_under(imp.name, p) for p in self.only)
        return False

    def message(self, imp: Import) -> str:
        return f"{imp.file}:{imp.line}: imports {imp.name} ({self.why})"


RULES = {
    "encoder": Rule(
        "encoder",
        lambda f: f.startswith("encoder/"),
        forbidden=("aioreid.platform", "aioreid.workers", "aioreid.ui"),
        why="the encoder knows nothing of the platform, workers or console",
    ),
    "platform": Rule(
        "platform",
        lambda f: f.startswith("platform/"),
        forbidden=("aioreid.workers", "aioreid.ui"),
        why="the platform defines interfaces the workers and the console use, never theirs",
    ),
    "workers": Rule(
        "workers",
        lambda f: f.startswith("workers/"),
        forbidden=("aioreid.ui",),
        why="workers wrap platform functions; the console is not one",
    ),
    "platform-core": Rule(
        "platform-core",
        lambda f: f.startswith("platform/") and not f.startswith("platform/cli/"),
        forbidden=("aioreid.platform.cli",),
        why="the command line is a client of the platform's core",
    ),
    "ui": Rule(
        "ui",
        lambda f: f.startswith("ui/"),
        only=("aioreid.platform.sdk", "aioreid.ui"),
        why="the console reaches the platform only through the SDK",
    ),
}


def source_files() -> list[Path]:
    return sorted(p for folder in PACKAGES for p in (ROOT / folder).rglob("*.py"))


def violations(rule: Rule, files: list[Path] | None = None) -> list[str]:
    found = []
    for path in source_files() if files is None else files:
        rel = path.relative_to(ROOT)
        if not rule.applies(rel.as_posix()):
            continue
        module, is_package = module_name(rel)
        for imp in imports_in(path.read_text(), rel.as_posix(), module, is_package):
            if rule.broken_by(imp):
                found.append(rule.message(imp))
    return found


def check_source(rule: Rule, source: str, file: str) -> list[str]:
    """The rule's messages for one source string posing as ``file``."""
    module, is_package = module_name(Path(file))
    return [
        rule.message(imp)
        for imp in imports_in(source, file, module, is_package)
        if rule.applies(file) and rule.broken_by(imp)
    ]


# --- the rules on the real tree -----------------------------------------------------------------


def test_every_package_has_modules_to_check() -> None:
    files = {p.relative_to(ROOT).parts[0] for p in source_files()}
    assert files == set(PACKAGES)


@pytest.mark.parametrize(
    "rule",
    [
        *(RULES[k] for k in ("encoder", "platform", "workers", "platform-core", "ui")),
    ],
    ids=lambda r: r.name,
)
def test_imports_follow_the_rule(rule: Rule) -> None:
    broken = violations(rule)
    assert not broken, f"{len(broken)} import(s) break the {rule.name} rule:\n" + "\n".join(broken)


def _loaded_by(module: str, prefixes: tuple[str, ...]) -> list[str]:
    """Modules under ``prefixes`` that importing ``module`` loads, in a fresh interpreter (the
    real import graph: indirect imports count)."""
    code = (
        f"import sys, {module}\n"
        f"prefixes = {prefixes!r}\n"
        "print('\\n'.join(sorted(m for m in sys.modules "
        "if any(m == p or m.startswith(p + '.') for p in prefixes))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.split()


def test_encoder_inference_does_not_load_the_training_package() -> None:
    """What the platform loads to embed must not drag in training code (and its imports)."""
    loaded = _loaded_by("aioreid.encoder.inference", ("aioreid.encoder.training",))
    assert not loaded, "importing aioreid.encoder.inference loads " + ", ".join(loaded)


def test_the_sdk_is_a_light_client() -> None:
    """A program calling the API needs httpx and the schemas, not the server's stack."""
    heavy = ("cv2", "torch", "sqlalchemy", "qdrant_client", "celery", "fastapi", "streamlit")
    loaded = _loaded_by("aioreid.platform.sdk", heavy)
    assert not loaded, "importing aioreid.platform.sdk loads " + ", ".join(loaded)


# --- the checker itself can fail ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "file", "source", "expected"),
    [
        ("platform", "platform/api/app.py", "import aioreid.workers\n", ["aioreid.workers"]),
        (
            "platform",
            "platform/api/app.py",
            "def f():\n    if True:\n        from aioreid.workers.celery_runner import X\n",
            ["aioreid.workers.celery_runner.X"],
        ),
        ("platform", "platform/api/app.py", "from aioreid import workers\n", ["aioreid.workers"]),
        ("platform", "platform/api/app.py", "from aioreid.workersx import y\n", []),
        ("platform", "platform/api/app.py", "from aioreid.platform.db import crud\n", []),
        ("encoder", "encoder/model/aio.py", "from aioreid.platform.config import S\n", ["S"]),
        ("encoder", "encoder/model/aio.py", "from ...platform import config\n", ["config"]),
        ("workers", "workers/app.py", "import aioreid.ui.app as console\n", ["aioreid.ui.app"]),
        ("platform-core", "platform/api/app.py", "from ..cli import main\n", ["cli.main"]),
        ("platform-core", "platform/cli/main.py", "from aioreid.platform.cli import jobs\n", []),
        ("ui", "ui/app.py", "from aioreid.platform.sdk import Client\n", []),
        ("ui", "ui/app.py", "from . import views\n", []),
        ("ui", "ui/app.py", "import json\nimport streamlit as st\n", []),
        (
            "ui",
            "ui/connection.py",
            "def make():\n    from aioreid.platform.api.app import create_app\n",
            ["aioreid.platform.api.app.create_app"],
        ),
    ],
)
def test_the_checker_finds_what_breaks_a_rule(
    rule: str, file: str, source: str, expected: list[str]
) -> None:
    found = check_source(RULES[rule], source, file)
    assert len(found) == len(expected), found
    for message, name in zip(found, expected, strict=True):
        assert message.startswith(f"{file}:") and name in message, message
    if found:  # the line of the import, not of the statement around it
        line = next(i for i, text in enumerate(source.splitlines(), 1) if "import" in text)
        assert found[0].startswith(f"{file}:{line}: imports "), found[0]
