"""The layers hold: Lightning is imported only under hpo_lightning/lightning/, and the core
(``hpo_lightning.tuners``) loads no framework, no store, no sweep and no scipy.special."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import hpo_lightning

PACKAGE = Path(hpo_lightning.__file__).parent
LIGHTNING = {"pytorch_lightning", "lightning"}


def lightning_imports(path: Path) -> list[str]:
    """Where ``path`` imports Lightning: import statements, and strings that name a Lightning
    module (``importlib.import_module("pytorch_lightning.loggers")`` and the like; a bare
    "lightning" is also a word, e.g. a logger prefix, so only dotted names count for it). Asking
    whether a module is loaded (``"pytorch_lightning" in sys.modules``) imports nothing."""
    found = []
    tree = ast.parse(path.read_text(), str(path))
    asked = {
        id(node.left)
        for node in ast.walk(tree)
        if isinstance(node, ast.Compare)
        and isinstance(node.ops[0], ast.In)
        and ast.unparse(node.comparators[0]) == "sys.modules"
    }
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in asked
        ):
            text = node.value
            if re.fullmatch(r"pytorch_lightning(\.\w+)*|lightning(\.\w+)+", text):
                names = [text]
        found += [f"{path.name}:{node.lineno} {n}" for n in names if n.split(".")[0] in LIGHTNING]
    return found


def test_lightning_is_imported_only_under_the_lightning_package() -> None:
    outside = [p for p in PACKAGE.rglob("*.py") if "lightning" not in p.relative_to(PACKAGE).parts]
    assert len(outside) > 50
    assert [hit for p in outside for hit in lightning_imports(p)] == []
    # the check finds what it looks for
    inside = PACKAGE / "lightning" / "_compat.py"
    assert any("pytorch_lightning" in hit for hit in lightning_imports(inside))


def loaded_after(statement: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``statement``."""
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_the_core_loads_no_framework_store_sweep_or_scipy_special() -> None:
    mods = loaded_after("import hpo_lightning.tuners")
    for heavy in (
        "torch",
        "pytorch_lightning",
        "lightning",
        "hpo_lightning.storage",
        "hpo_lightning.sweep",
        "hpo_lightning.lightning",
        "sqlite3",
        "pytest",
    ):
        assert heavy not in mods, f"import hpo_lightning.tuners loaded {heavy}"
    # scipy (scipy.special's ndtr for TPE, scipy.optimize for GP) is imported when used
    assert sorted(m for m in mods if m.split(".")[0] == "scipy") == []
    assert "hpo_lightning.tuners._tpe" in mods  # (the check sees what was imported)
