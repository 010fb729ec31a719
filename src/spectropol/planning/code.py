"""What a job's result depends on in the code: its script and the spectropol modules it imports.

Snakemake's own code trigger sees a script rule's script by its file time only, and never the
library the script calls, where the algorithms are. A rule that passes ``code_digest(script)`` as a
param reruns when any of that code changes, and only then: a change to kernels/faraday.py reruns
the Faraday and catalogue jobs, not the imaging. The digest is of the modules' syntax trees without
docstrings, so that a comment, a docstring or a reformatting reruns nothing.
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # src/spectropol of this installation


def _module_path(name: str, package: Path) -> Path | None:
    """The file of spectropol module ``name`` (dotted, absolute) in ``package``, or None outside it."""
    parts = name.split(".")
    if parts[0] != "spectropol":
        return None
    base = package.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value,
                                                                                                      str):
                node.body = node.body[1:] or [ast.Pass()]
    return tree


@lru_cache(maxsize=None)
def _parsed(path: Path, package: Path) -> tuple[str, tuple[str, ...]]:
    """A module's code (its syntax tree without docstrings, dumped) and the spectropol modules it imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    own = _module_name(path, package) if path.is_relative_to(package) else ""
    parent = own if is_package else own.rpartition(".")[0]  # what relative imports start from
    imported = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parent.split(".")[: len(parent.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            imported.append(target)
            imported += [f"{target}.{alias.name}" for alias in node.names]  # submodules imported by name
    found = tuple(sorted({name for name in imported if _module_path(name, package) is not None}))
    return ast.dump(_strip_docstrings(tree), include_attributes=False), found


def code_files(script: str | Path, package: str | Path = PACKAGE) -> list[Path]:
    """``script`` and every spectropol module it imports, directly or not (parent packages included),
    from ``package`` (the workflow's src/spectropol, which its jobs import)."""
    package = Path(package).resolve()
    seen: dict[Path, None] = {}
    pending = [Path(script).resolve()]
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen[path] = None
        for name in _parsed(path, package)[1]:
            parts = name.split(".")
            for k in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ too
                module = _module_path(".".join(parts[:k]), package)
                if module is not None and module not in seen:
                    pending.append(module)
    return sorted(seen, key=str)


@lru_cache(maxsize=None)
def code_digest(script: str | Path, package: str | Path = PACKAGE) -> str:
    """A short digest of the code a script runs: it changes exactly when that code's behaviour can.
    ``package`` is where the jobs import spectropol from: the workflow's own src/spectropol (the
    Snakefile puts it first on the path), which need not be the installed one."""
    package = Path(package).resolve()
    digest = hashlib.sha256()
    root = package.parent
    for path in code_files(script, package):
        name = str(path.relative_to(root)) if path.is_relative_to(root) else path.name
        digest.update(f"{name}\n{_parsed(path, package)[0]}\n".encode())
    return digest.hexdigest()[:16]


def rule_code_digest(workflow_dir: str | Path, script: str) -> str:
    """The digest of a workflow script (scripts/<script>) and of the workflow's own src/spectropol
    it imports: a rule's ``code`` param."""
    return code_digest(Path(workflow_dir) / "scripts" / script, Path(workflow_dir) / "src" / "spectropol")
