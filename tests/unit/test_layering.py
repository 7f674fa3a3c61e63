"""The import graph: every arrow follows the layering, and no module reaches itself through its imports.

Imports inside functions count too: a lazy import still makes a module need the other one (and two modules that
lazily import each other are a circle that only shows at run time).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# package -> the project packages its modules may import. features is the shared base (contracts, feature code,
# the model registry); the generator, the importer, training and serving each stand on it alone (training and
# serving read imported data through features.imported, never through ingest); the CLI is the app shell.
ALLOWED = {
    "features": {"features"},
    "synthetic": {"features", "synthetic"},
    "ingest": {"features", "ingest"},
    "training": {"features", "training"},
    "serving": {"features", "serving"},
    "cli": {"features", "synthetic", "ingest", "training", "serving", "cli"},
}
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    out = {}
    for package in ALLOWED:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _target(name: str) -> str | None:
    """The project module an imported name lives in (the longest known prefix), None outside the project."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return None


def imports_of(module: str) -> set[str]:
    """Project modules `module` imports at run time; imports under `if TYPE_CHECKING:` are annotations only."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(inner) for node in ast.walk(tree)
                   if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
                   for inner in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            # `from pkg import name`: the submodule pkg.name if there is one, else pkg itself
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        found.update(t for t in map(_target, names) if t is not None and t != module)
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def test_every_import_follows_the_layering():
    against = [f"{module} -> {target}" for module, targets in GRAPH.items() for target in sorted(targets)
               if target.split(".")[0] not in ALLOWED[module.split(".")[0]]]
    assert against == [], "imports against the layering (see ALLOWED):\n" + "\n".join(against)


def test_the_import_graph_has_no_circles():
    """Tarjan's strongly connected components: any component of two or more modules is a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in GRAPH[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in GRAPH:
        if module not in index:
            visit(module)
    assert circles == [], f"import circles: {circles}"


def test_the_graph_sees_lazy_imports():
    """The walk must find imports inside functions, or the two tests above would pass by not looking."""
    assert "training.sentiment" in GRAPH["training.pipeline"] or "features.model_specs" in GRAPH["training.pipeline"]
    assert any(target.startswith("serving.") for target in GRAPH["cli.audit"])  # imported inside the command


def test_store_concerns_and_the_policy_import_one_way():
    """serving.store: schema, sealing <- audit, dispatch <- intake, lifecycle, export <- the package (WarningStore),
    and schema <- series (counts, clusters); no concern imports the façade or a sibling at its own level. The
    policy model never imports the evaluator; serving.monitoring's pure parts never import the store or engine."""
    allowed = {"schema": set(), "sealing": set(), "audit": {"schema", "sealing"}, "dispatch": {"schema"},
               "intake": {"schema", "audit", "dispatch"}, "lifecycle": {"schema", "audit", "dispatch"},
               "export": {"schema", "audit", "dispatch"}, "series": {"schema"}}
    concerns = {m.removeprefix("serving.store."): GRAPH[m] for m in GRAPH if m.startswith("serving.store.")}
    assert set(concerns) == set(allowed), "a store module was added or removed: place it in the layers above"
    for concern, targets in concerns.items():
        inside = {t.removeprefix("serving.store.") for t in targets if t.startswith("serving.store")}
        assert inside <= allowed[concern], f"serving.store.{concern} imports {sorted(inside - allowed[concern])}"
    chain = ["serving.policy_model", "serving.policy_parse", "serving.policy", "serving.routing", "serving.rules"]
    for position, module in enumerate(chain):  # policy_model <- policy_parse <- policy <- routing <- rules
        later = set(chain[position + 1:]) & GRAPH[module]
        assert not later, f"{module} imports {sorted(later)}, which stand above it"
    pure = ("spikes", "clusters", "effects", "series", "config")
    for name in pure:
        reached = {t for t in GRAPH[f"serving.monitoring.{name}"] if t.startswith("serving.")}
        assert reached <= {f"serving.monitoring.{p}" for p in pure}, f"serving.monitoring.{name} imports {reached}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_over_500_lines(module):
    lines = len(MODULES[module].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module].relative_to(ROOT)} has {lines} lines: split it by concern"
