"""The library's shape (docs/architecture.md): no import cycles anywhere, each layer imports only
the layers below it, and nothing in spectropol imports Snakemake."""

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "src" / "spectropol"
# A module may import its own layer and the layers below it, never one above.
LAYERS = {"base": 0, "kernels": 1, "io": 2, "qa": 3, "stages": 4, "planning": 5, "cli": 6}


def module_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_of(p): p for p in PACKAGE.rglob("*.py")}


def layer(module: str) -> str:
    part = module.split(".")[1] if "." in module else ""
    return part if part in LAYERS else "base"


def imported(module: str) -> set[str]:
    """spectropol modules (and the external top-level packages) ``module`` imports, anywhere in
    it (imports inside functions included)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in MODULES)
    return {name for name in found if name in MODULES or not name.startswith("spectropol")}


def graph() -> dict[str, set[str]]:
    return {module: {m for m in imported(module) if m in MODULES and m != module} for module in MODULES}


def test_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(module, path):
        state[module] = 1
        for target in sorted(edges[module]):
            if target.startswith(module + "."):
                continue  # a package importing its own submodule is not a cycle
            if state.get(target) == 1:
                cycles.append(path[path.index(target):] + [target] if target in path else [module, target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_layers_import_only_downwards():
    wrong = []
    for module, targets in graph().items():
        for target in targets:
            if target == "spectropol":  # the package itself: its version
                continue
            if LAYERS[layer(target)] > LAYERS[layer(module)]:
                wrong.append(f"{module} ({layer(module)}) imports {target} ({layer(target)})")
    assert wrong == []


def test_the_library_never_imports_snakemake():
    users = [m for m in MODULES if any(name.split(".")[0] == "snakemake" for name in imported(m))]
    assert users == []


def test_every_rule_file_has_its_stage_module():
    # rules/<stage>.smk <-> spectropol/stages/<stage>.py, and each script calls into stages/;
    # common.smk binds the plan, field.smk is the stages of one field put together, survey_common.smk
    # the survey's fields and input functions
    stems = {p.stem for p in (REPO / "rules").glob("*.smk")} - {"common", "field", "survey_common"}
    assert stems == {p.stem for p in (PACKAGE / "stages").glob("*.py")} - {"__init__", "tiling"}
    for script in (REPO / "scripts").glob("*.py"):
        assert "from spectropol.stages." in script.read_text(), script.name
