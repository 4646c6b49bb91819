"""The package's import structure, read from its source with `ast`.

- No module imports a private name (a module or name starting with `_`) of another
  package: private parts are shared only inside the package (and its subpackages)
  that holds them.
- `dynsim.models` and `dynsim.solvers` import nothing from the rest of `dynsim`;
  `dynsim.solvers` imports nothing from `dynsim.models`.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
# Source folder -> installed package name (pyproject.toml's package-dir).
PACKAGES = {"dynsim": "dynsim", "models": "dynsim.models", "solvers": "dynsim.solvers"}


def _modules() -> dict[str, Path]:
    out = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            out[".".join([package, *parts])] = (path, is_package)
    return out


MODULES = _modules()


def _imports(name: str, path: Path, is_package: bool) -> list[tuple[str, int]]:
    """Every imported dotted name (`module` or `module.name`) with its line."""
    here = name if is_package else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = here.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found += [(f"{module}.{alias.name}", node.lineno) for alias in node.names]
    return found


def _private_owner(target: str) -> str | None:
    """The package whose private part `target` names (None: nothing private)."""
    parts = target.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_walker_sees_the_whole_package():
    # The rules below would pass vacuously on an empty walk.
    assert {"dynsim._scan", "dynsim.solvers._integrate", "dynsim.models._base"} <= set(
        MODULES
    )
    imports = dict(_imports("dynsim._scan", *MODULES["dynsim._scan"]))
    assert "dynsim._scan_plan.ScanPlan" in imports or any(
        t.startswith("dynsim._scan_plan") for t in imports
    )


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_private_import_across_packages(name):
    path, is_package = MODULES[name]
    bad = []
    for target, line in _imports(name, path, is_package):
        owner = _private_owner(target)
        if owner is not None and not _inside(name, owner):
            bad.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize(
    "name",
    sorted(
        n
        for n in MODULES
        if _inside(n, "dynsim.models") or _inside(n, "dynsim.solvers")
    ),
)
def test_models_and_solvers_do_not_import_dynsim(name):
    path, is_package = MODULES[name]
    allowed = (
        ("dynsim.solvers",)
        if _inside(name, "dynsim.solvers")
        else (
            "dynsim.models",
            "dynsim.solvers",
        )
    )
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {target}"
        for target, line in _imports(name, path, is_package)
        if _inside(target, "dynsim") and not any(_inside(target, a) for a in allowed)
    ]
    assert not bad, "\n".join(bad)
