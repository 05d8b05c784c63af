"""The extras in pyproject.toml hold what the code that needs them imports."""

from __future__ import annotations

import re
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from malsori._extras import EXTRAS

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parent.parent


def _names(requirements: list[str], extras: dict[str, list[str]]) -> set[str]:
    """Distribution names of ``requirements``, malsori[...] references expanded."""
    names: set[str] = set()
    for req in requirements:
        name = re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0].lower().replace("_", "-")
        if name == "malsori":
            inner = re.search(r"\[([^\]]+)\]", req)
            for extra in inner.group(1).split(",") if inner else []:
                names |= _names(extras[extra.strip()], extras)
        else:
            names.add(name)
    return names


def test_each_extra_declares_the_packages_of_its_modules() -> None:
    """`malsori finetune --eval` needs jiwer and whisper-normalizer; the train extra did not
    list them, so a `pip install malsori[train]` crashed with ModuleNotFoundError after the
    data was loaded (found on a GPU machine with only that extra's packages)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras: dict[str, list[str]] = project["optional-dependencies"]
    core = _names(project["dependencies"], extras)
    provided = packages_distributions()
    for extra, modules in EXTRAS.items():
        declared = core | _names(extras[extra], extras)
        for module in modules:
            dists = {d.lower().replace("_", "-") for d in provided.get(module, [])}
            assert dists, f"{module} is not installed here (the {extra} extra)"
            assert dists & declared, f"extra {extra!r} imports {module} ({dists}) undeclared"


def test_serve_names_the_module_a_partial_install_lacks() -> None:
    """A server extra with one package missing (on a GPU machine: fastapi's own
    requirement opentelemetry-api) is one line naming that module, exit 1, no traceback."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "from malsori.cli import main; sys.exit(main(['serve', '--port', '1']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "needs the server extra (opentelemetry could not be imported)" in proc.stderr
    assert "Traceback" not in proc.stderr
