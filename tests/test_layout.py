"""Data flows one way: the library never imports the command line (nor the training, evaluation or
serving packages that build on it), and the command line loads torch only inside its commands."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "clapkit"
APPLICATIONS = ("cli", "train", "eval", "index", "serve")  # build on the library, never the reverse


def imported_modules(path: Path) -> list[str]:
    """Absolute names of the clapkit modules a file imports (relative imports resolved)."""
    package = ["clapkit", *path.relative_to(PACKAGE).parent.parts]
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names += [module] + [f"{module}.{alias.name}" for alias in node.names]
    return [name for name in names if name.startswith("clapkit")]


LIBRARY_FILES = [p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] not in APPLICATIONS]


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_library_never_imports_its_applications(path):
    for name in imported_modules(path):
        parts = name.split(".")
        assert len(parts) < 2 or parts[1] not in APPLICATIONS, f"{path.name} imports {name}"


def test_the_layout_check_sees_relative_imports():
    names = imported_modules(PACKAGE / "cli" / "infer.py")
    assert "clapkit.options" in names and "clapkit.errors.UsageError" in names
