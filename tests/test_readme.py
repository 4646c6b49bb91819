"""Every Python block of the README runs as written (in order, sharing one
namespace, in a scratch directory)."""

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_python_blocks():
    assert len(_blocks()) >= 3


@pytest.mark.slow
def test_readme_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "readme"}
    for i, block in enumerate(_blocks()):
        code = compile(block, f"README.md python block {i + 1}", "exec")
        exec(code, namespace)  # noqa: S102
    assert os.listdir(tmp_path)  # the tour writes its HDF5 file and figure


def test_every_document_the_code_cites_is_in_the_repository():
    # Docstrings, configs and tests point users at the project's own docs/ pages.
    root = README.parent
    cited = set()
    for path in root.rglob("*"):
        if path.suffix not in (".py", ".toml") or ".venv" in path.parts:
            continue
        for name in re.findall(r"[\w./-]*\b[A-Za-z_]+\.md\b", path.read_text()):
            cited.add((name, path.relative_to(root)))
    assert cited
    missing = [(n, str(p)) for n, p in cited if not (root / n).is_file()]
    assert not missing, missing
