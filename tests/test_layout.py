"""The architecture as a test: which package may import which, read from the source with ``ast``.

The order is the one the README's architecture table and ``pipeline/__init__.py`` give: a
package imports only from packages before it (or from itself), the core never loads the
terminal, the scheduler or Scrapy, and no two modules import each other, however indirectly.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Package (or top-level module) of pipeline/ -> its place in the data flow.
ORDER = {
    "errors": 0,
    # The language table: data that every stage reads, importing nothing.
    "languages": 0,
    "settings": 1,
    "net": 2,
    "normalise": 3,
    "store": 4,
    "feeds": 5,
    "discover": 5,
    "crawl": 6,
    "alerts": 7,
    "ops": 8,
    "jobs": 9,
    "cli": 10,
}
# Edges that go against the order on purpose, each with its reason.
ALLOWED_UPWARD = {
    # Rules are checked when the configuration loads; the query parser is pure.
    ("settings", "pipeline.alerts.query"),
    # The index names (and analysed languages) travel with the settings; that module imports
    # nothing from pipeline.
    ("settings", "pipeline.store.names"),
    # A source's feeds are read like any other listing when discovering.
    ("discover", "pipeline.feeds.parse"),
}
# Third-party packages the core must not load: the terminal, the scheduler, the crawler.
FORBIDDEN = {"rich": {"cli"}, "airflow": set(), "scrapy": set(), "twisted": set()}


def _modules(folder: str) -> Iterator[tuple[str, Path]]:
    for path in sorted((REPO / folder).rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _imports(module: str, path: Path) -> set[str]:
    """Every module ``path`` imports when it runs (``if TYPE_CHECKING:`` blocks left out)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(child) for child in ast.walk(node)}
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            found.add(base)
            # ``from pipeline.store import client`` imports the module pipeline.store.client.
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def _stage(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "pipeline"


def _allowed(mine: str, target: str) -> bool:
    theirs = _stage(target)
    return theirs == mine or (mine, target) in ALLOWED_UPWARD or ORDER[theirs] < ORDER[mine]


CORE = dict(_modules("pipeline"))
GRAPH = {
    module: {
        name
        for name in _imports(module, path)
        if name in CORE and name != module and name != "pipeline"
    }
    for module, path in CORE.items()
}


def test_every_package_is_placed() -> None:
    stages = {_stage(module) for module in CORE} - {"pipeline"}
    assert stages == set(ORDER), "a package of pipeline/ has no place in ORDER"


@pytest.mark.parametrize("module", sorted(CORE))
def test_a_stage_imports_only_stages_before_it(module: str) -> None:
    mine = _stage(module)
    if mine == "pipeline":
        assert GRAPH[module] == set(), "pipeline/__init__.py imports nothing"
        return
    wrong = sorted(target for target in GRAPH[module] if not _allowed(mine, target))
    assert wrong == [], f"{module} ({mine}) imports stages downstream of it: {wrong}"


@pytest.mark.parametrize("module", sorted(CORE))
def test_the_core_never_loads_the_terminal_the_scheduler_or_the_crawler(module: str) -> None:
    imported = _imports(module, CORE[module])
    for top, allowed in FORBIDDEN.items():
        if _stage(module) in allowed:
            continue
        loads = sorted(n for n in imported if n == top or n.startswith(f"{top}."))
        assert loads == [], f"{module} imports {loads}"
    assert not any(n.split(".")[0] == "devtools" for n in imported), module


def test_no_import_cycles() -> None:
    """Tarjan's strongly connected components over the module graph: each must be one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    assert cycles == []


def test_dags_only_wire_jobs() -> None:
    """DAG files call pipeline.jobs (and read settings or errors); the stages stay behind it."""
    for module, path in _modules("dags"):
        core = sorted(n for n in _imports(module, path) if n in CORE and n != "pipeline")
        assert set(core) <= {"pipeline.jobs", "pipeline.settings", "pipeline.errors"}, module


def test_the_checker_sees_a_downstream_import(tmp_path: Path) -> None:
    """The checker itself: a module importing a later stage is caught, lazily or not."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from pipeline.errors import ConfigError\n"
        "def later():\n"
        "    from pipeline.alerts import match\n"
        "    import rich.table\n",
        encoding="utf-8",
    )
    found = _imports("pipeline.net.sample", sample)
    assert {"pipeline.errors", "pipeline.alerts.match", "rich.table"} <= found
