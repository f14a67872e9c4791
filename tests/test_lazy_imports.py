"""Issue 15 item 2: the product imports at the top of its modules; a function-local import needs a reason.

The layer contracts (import-linter, `make lint`) only see imports, wherever they are; this keeps lazy
imports from hiding a dependency (or a cycle that should be cut) at the bottom of a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("config", "core", "memory", "chat", "inspector")

# (module file, top-level package imported): why it is imported inside a function.
ALLOWED = {
    # torch + sentence-transformers take seconds; only the local embedder's first use pays them.
    ("core/embeddings.py", "torch"),
    ("core/embeddings.py", "sentence_transformers"),
    # openai takes ~0.4 s; the offline mode (the default) and the local embedder never need it.
    ("core/embeddings.py", "openai"),
    ("core/llm.py", "openai"),
    # Django: signal receivers import models, which AppConfig.ready() is the first place to reach.
    ("chat/apps.py", "chat"),
}


def _lazy_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.Import):
                found += [(inner.lineno, alias.name.split(".")[0]) for alias in inner.names]
            elif isinstance(inner, ast.ImportFrom) and inner.level == 0 and inner.module:
                found.append((inner.lineno, inner.module.split(".")[0]))
    return found


def test_product_code_has_no_unexplained_function_local_imports() -> None:
    unexplained = []
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if "/migrations/" in name:
                continue
            unexplained += [
                f"{name}:{line} imports {module}"
                for line, module in _lazy_imports(path)
                if (name, module) not in ALLOWED
            ]
    assert unexplained == [], "move these to the top of the module, or add them to ALLOWED with why"


def test_the_scan_sees_a_lazy_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import os\n\ndef f():\n    from memory import keys\n    import json\n")
    assert _lazy_imports(module) == [(4, "memory"), (5, "json")]
