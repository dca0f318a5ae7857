"""The package's folders are layers, and imports only go up them.

A reader should know from a module's folder what it may use and where a piece of code lives, and no
chain of imports should come back to where it started. Top to bottom:

    0 foundation  warehouse.py, ids.py, errors.py
    1 media/      reading files
    2 store/      persistence
    3 models/     pure algorithms: arrays in, arrays out
    4 feedback/
    5 stages/
    6 search/
    7 demo/
    8 defs/ and definitions.py (the Dagster layer, the code location)
    9 apps/       cli, server

A module imports only from its own layer or the layers above it; `media_assets/__init__.py` is the
public facade, which may import anything (lazily) and which nothing inside the package imports. Stages
do not import each other; models use only the foundation (not the warehouse) and media/; Dagster is
imported only in defs/, definitions.py and apps/; every module sits in a layer.

Imports are read with `ast` (nothing here imports media_assets or Dagster), and every import counts:
module level, in functions and methods, under `if TYPE_CHECKING:`. The checks are plain functions of
a root folder (the one holding `media_assets/`), so the tests below also run them on small fake trees
to show that each one finds what it should, and nothing else.
"""

from __future__ import annotations

import ast
import textwrap
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

PACKAGE = "media_assets"
ROOT = Path(__file__).resolve().parent.parent

FOUNDATION = 0
DEFS = 8
APPS = 9
FOUNDATION_MODULES = {"warehouse", "ids", "errors"}
LAYER_FOLDERS = {
    "media": 1,
    "store": 2,
    "models": 3,
    "feedback": 4,
    "stages": 5,
    "search": 6,
    "demo": 7,
    "defs": DEFS,
    "apps": APPS,
}
LAYER_NAMES = ["foundation", "media", "store", "models", "feedback", "stages", "search", "demo", "defs", "apps"]
WAREHOUSE = f"{PACKAGE}.warehouse"
STAGES = f"{PACKAGE}.stages"


# -- reading the tree ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Module:
    name: str  # dotted: media_assets.store.catalog
    rel: str  # path from the root: media_assets/store/catalog.py
    is_package: bool  # an __init__.py: relative imports resolve against the module itself


@dataclass(frozen=True)
class Import:
    source: Module
    line: int
    target: str  # dotted name of the module imported (inside the package), or of the external module
    internal: bool  # target is in media_assets
    exists: bool  # internal and a module (file, package or namespace folder) of that name is there

    @property
    def where(self) -> str:
        return f"{self.source.rel}:{self.line}"


@dataclass(frozen=True)
class Tree:
    modules: dict[str, Module]  # the package's .py files by module name (a package's __init__ wins)
    folders: frozenset[str]  # dotted names of the folders holding .py files (packages, namespace or not)
    shadowed: tuple[str, ...]  # rel paths of foo.py files hidden by a foo/ package of the same name
    imports: tuple[Import, ...]

    def known(self, name: str) -> bool:
        return name in self.modules or name in self.folders


def _signature(root: Path) -> tuple[tuple[str, int, int], ...]:
    files = []
    for path in sorted((root / PACKAGE).rglob("*.py")):
        rel = path.relative_to(root)
        if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            continue
        stat = path.stat()
        files.append((rel.as_posix(), stat.st_mtime_ns, stat.st_size))
    return tuple(files)


def scan(root: Path) -> Tree:
    """Every module under root/media_assets and every import in it (cached until a file changes)."""
    root = Path(root).resolve()
    return _scan(root, _signature(root))


@lru_cache(maxsize=16)
def _scan(root: Path, signature: tuple[tuple[str, int, int], ...]) -> Tree:
    modules: dict[str, Module] = {}
    folders: set[str] = set()
    shadowed: list[str] = []
    by_name: dict[str, list[Module]] = {}
    for rel, _, _ in signature:
        parts = rel.removesuffix(".py").split("/")
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        for depth in range(1, len(parts) if not is_package else len(parts) + 1):
            folders.add(".".join(parts[:depth]))
        module = Module(".".join(parts), rel, is_package)
        by_name.setdefault(module.name, []).append(module)
    for name, candidates in by_name.items():
        candidates.sort(key=lambda m: not m.is_package)  # Python imports the package, not foo.py beside it
        modules[name] = candidates[0]
        shadowed.extend(m.rel for m in candidates[1:])
    # a foo.py hidden by foo/ is not importable; it is reported as unplaced, and its imports are not read
    tree = Tree(modules, frozenset(folders), tuple(sorted(shadowed)), ())
    imports: list[Import] = []
    for module in sorted(modules.values(), key=lambda m: m.rel):
        imports.extend(_imports_of(root, module, tree))
    return Tree(tree.modules, tree.folders, tree.shadowed, tuple(imports))


def _imports_of(root: Path, module: Module, tree: Tree) -> list[Import]:
    path = root / module.rel
    syntax = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: dict[tuple[int, str], Import] = {}

    def add(line: int, target: str) -> None:
        internal = target.split(".")[0] == PACKAGE
        found.setdefault((line, target), Import(module, line, target, internal, internal and tree.known(target)))

    for node in ast.walk(syntax):  # the whole tree: functions, methods, TYPE_CHECKING blocks alike
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = _from_base(module, node)
            if base is None:  # a relative import above the top-level package
                add(node.lineno, f"{PACKAGE}.<beyond the top-level package>")
                continue
            if base.split(".")[0] != PACKAGE:
                add(node.lineno, base)
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                add(node.lineno, sub if alias.name != "*" and tree.known(sub) else base)
    return sorted(found.values(), key=lambda i: (i.line, i.target))


def _from_base(module: Module, node: ast.ImportFrom) -> str | None:
    """The module a `from X import ...` names: X itself, or X resolved against the importing package."""
    if node.level == 0:
        return node.module or ""
    package = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
    up = node.level - 1
    if up >= len(package):
        return None
    parts = package[: len(package) - up]
    if node.module:
        parts += node.module.split(".")
    return ".".join(parts)


def layer_of(name: str, tree: Tree) -> int | None:
    """The layer of a package module; None for the facade (media_assets itself) and for unplaced modules."""
    parts = name.split(".")
    if len(parts) < 2 or parts[0] != PACKAGE:
        return None
    if len(parts) == 2 and f"{PACKAGE}.{parts[1]}" not in tree.folders:  # a file directly in media_assets/
        if parts[1] in FOUNDATION_MODULES:
            return FOUNDATION
        return DEFS if parts[1] == "definitions" else None
    return LAYER_FOLDERS.get(parts[1])


def _layer_label(layer: int) -> str:
    return f"layer {layer}, {LAYER_NAMES[layer]}"


def _package_imports(tree: Tree) -> list[Import]:
    """Imports of package modules that exist, without a module's imports of itself."""
    return [i for i in tree.imports if i.internal and i.exists and i.target != i.source.name]


# -- the checks: each returns its problems as "file:line: ..." lines, sorted -----------------------


def find_import_cycles(root: Path) -> list[str]:
    """Every cycle among the package's modules, one per import that closes one, as `a -> b -> a`.

    An import counts as an edge to the module it names only; the parent packages Python also imports
    on the way (`media_assets.store` for `media_assets.store.catalog`) are not edges. The facade is left
    out: its imports are lazy by design, and imports of it are faults of their own (find_package_root_imports).
    """
    tree = scan(root)
    lines: dict[tuple[str, str], list[int]] = {}
    for imp in _package_imports(tree):
        if PACKAGE in (imp.source.name, imp.target):
            continue
        lines.setdefault((imp.source.name, imp.target), []).append(imp.line)
    graph: dict[str, list[str]] = {}
    for source, target in sorted(lines):
        graph.setdefault(source, []).append(target)
        graph.setdefault(target, [])
    component = _strongly_connected(graph)
    cycles: dict[tuple[str, ...], str] = {}
    for source, target in sorted(lines):
        if component[source] != component[target]:
            continue
        back = _shortest_path(graph, target, source, component)
        nodes = [source, target, *back[:-1]]  # source -> target -> ... -> (back to) source
        start = nodes.index(min(nodes))
        nodes = nodes[start:] + nodes[:start]
        key = tuple(nodes)
        if key in cycles:
            continue
        chain = " -> ".join([*nodes, nodes[0]])
        hops = zip(nodes, [*nodes[1:], nodes[0]], strict=True)
        places = ", ".join(f"{tree.modules[a].rel}:{n}" for a, b in hops for n in lines[(a, b)])
        cycles[key] = f"{tree.modules[nodes[0]].rel}:{lines[(nodes[0], nodes[1])][0]}: cycle {chain} [{places}]"
    return sorted(cycles.values())


def _strongly_connected(graph: dict[str, list[str]]) -> dict[str, int]:
    """Tarjan's algorithm, iteratively: node -> id of its strongly connected component."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    component: dict[str, int] = {}
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component[member] = index[node]
                        if member == node:
                            break
    return component


def _shortest_path(graph: dict[str, list[str]], start: str, goal: str, component: dict[str, int]) -> list[str]:
    """The nodes after start on a shortest path from start to goal, within their component."""
    previous: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            break
        for child in graph[node]:
            if child not in previous and component[child] == component[start]:
                previous[child] = node
                queue.append(child)
    path = []
    node: str | None = goal
    while node is not None and node != start:
        path.append(node)
        node = previous[node]
    return path[::-1]


def find_upward_imports(root: Path) -> list[str]:
    """Imports of a module in a lower layer (a higher number) than the importing module's."""
    tree = scan(root)
    problems = []
    for imp in _package_imports(tree):
        source, target = layer_of(imp.source.name, tree), layer_of(imp.target, tree)
        if source is not None and target is not None and target > source:
            problems.append(
                f"{imp.where}: {imp.source.name} ({_layer_label(source)}) imports {imp.target} ({_layer_label(target)})"
            )
    return sorted(problems)


def find_package_root_imports(root: Path) -> list[str]:
    """Imports, inside the package, of the facade media_assets itself (`from media_assets import X`)."""
    tree = scan(root)
    return sorted(
        f"{imp.where}: {imp.source.name} imports the package root {PACKAGE} (the public facade); "
        "import the module that defines the name"
        for imp in _package_imports(tree)
        if imp.target == PACKAGE
    )


def _stage(name: str) -> str:
    """The stage a module of stages/ belongs to: stages.frames for stages/frames.py or stages/frames/*."""
    return ".".join(name.split(".")[:3])


def find_stage_to_stage_imports(root: Path) -> list[str]:
    """Imports, in a module of stages/, of another stage (or of the stages package)."""
    tree = scan(root)
    problems = []
    for imp in _package_imports(tree):
        source = imp.source.name
        if layer_of(source, tree) != LAYER_FOLDERS["stages"]:
            continue
        if (imp.target == STAGES or imp.target.startswith(f"{STAGES}.")) and _stage(imp.target) != _stage(source):
            problems.append(f"{imp.where}: stage {source} imports stage {imp.target}; stages do not use each other")
    return sorted(problems)


def find_impure_model_imports(root: Path) -> list[str]:
    """Imports, in a module of models/, of anything in the package but models/, media/, ids and errors."""
    tree = scan(root)
    allowed = {FOUNDATION, LAYER_FOLDERS["media"], LAYER_FOLDERS["models"]}
    problems = []
    for imp in _package_imports(tree):
        if layer_of(imp.source.name, tree) != LAYER_FOLDERS["models"]:
            continue
        target = layer_of(imp.target, tree)
        if target not in allowed or imp.target == WAREHOUSE:
            what = "the warehouse" if imp.target == WAREHOUSE else "not foundation or media/"
            problems.append(f"{imp.where}: model {imp.source.name} imports {imp.target} ({what}); models take arrays")
    return sorted(problems)


def _is_dagster(name: str) -> bool:
    top = name.split(".")[0]
    return top == "dagster" or top.startswith("dagster_")


def find_dagster_outside_defs(root: Path) -> list[str]:
    """Imports of dagster or dagster_* outside defs/, definitions.py and apps/."""
    tree = scan(root)
    return sorted(
        f"{imp.where}: {imp.source.name} imports {imp.target}; Dagster belongs in defs/, definitions.py or apps/"
        for imp in tree.imports
        if not imp.internal and _is_dagster(imp.target) and layer_of(imp.source.name, tree) not in (DEFS, APPS)
    )


def find_unplaced_modules(root: Path) -> list[str]:
    """Modules in no layer: files directly in media_assets/ that are not listed, and unknown folders."""
    tree = scan(root)
    problems = [
        f"{module.rel}:1: unplaced module {module.name}: not warehouse.py, ids.py, errors.py, definitions.py "
        f"or __init__.py, nor in a layer folder ({', '.join(f'{f}/' for f in LAYER_FOLDERS)})"
        for module in tree.modules.values()
        if module.name != PACKAGE and layer_of(module.name, tree) is None
    ]
    problems += [f"{rel}:1: unplaced module, hidden by the package folder of the same name" for rel in tree.shadowed]
    return sorted(problems)


def find_missing_imports(root: Path) -> list[str]:
    """Imports of package modules that are not there (left behind by a move, say)."""
    tree = scan(root)
    return sorted(
        f"{imp.where}: {imp.source.name} imports {imp.target}, which is no module in the package"
        for imp in tree.imports
        if imp.internal and not imp.exists
    )


def _report(problems: list[str], what: str) -> str:
    return f"{len(problems)} {what}:\n" + "\n".join(f"  {p}" for p in problems)


# -- the real tree ----------------------------------------------------------------------------------


def test_no_import_cycles():
    problems = find_import_cycles(ROOT)
    assert not problems, _report(problems, "import cycle(s) (module-level and function-level imports count)")


def test_no_upward_imports():
    problems = find_upward_imports(ROOT)
    assert not problems, _report(problems, "upward import(s): a module imports only from its layer or above")


def test_no_imports_of_the_package_root():
    problems = find_package_root_imports(ROOT)
    assert not problems, _report(problems, f"import(s) of the facade {PACKAGE} from inside the package")


def test_stages_do_not_import_stages():
    problems = find_stage_to_stage_imports(ROOT)
    assert not problems, _report(problems, "import(s) of one stage by another")


def test_models_are_pure():
    problems = find_impure_model_imports(ROOT)
    assert not problems, _report(
        problems, "import(s) in models/ of more than the foundation (not warehouse) and media/"
    )


def test_dagster_only_in_the_dagster_layer():
    problems = find_dagster_outside_defs(ROOT)
    assert not problems, _report(problems, "Dagster import(s) outside defs/, definitions.py and apps/")


def test_no_unplaced_modules():
    problems = find_unplaced_modules(ROOT)
    assert not problems, _report(problems, "module(s) in no layer")


def test_package_imports_resolve():
    problems = find_missing_imports(ROOT)
    assert not problems, _report(problems, "import(s) of package modules that do not exist")


# -- fake trees: the checks find what they should, and only that ------------------------------------


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / PACKAGE / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def _places(problems: list[str]) -> list[str]:
    return [p.split(": ", 1)[0] for p in problems]


CLEAN_TREE = {
    "__init__.py": '''
        """The facade."""


        def __getattr__(name):
            from .search.client import Client

            return Client
        ''',
    "warehouse.py": "import json\n",
    "ids.py": "from .errors import IdError\n",
    "errors.py": "class IdError(Exception): ...\n",
    "definitions.py": "from dagster import Definitions\n\nfrom .defs import assets\n",
    "media/__init__.py": '"""Reading files."""\n',
    "media/decoding.py": "from ..errors import IdError\nfrom . import signals\n",
    "media/signals.py": "import numpy\n",
    "store/__init__.py": '"""Persistence."""\n',
    "store/catalog.py": "import media_assets.warehouse\nfrom . import retry\nfrom .retry import backoff\n",
    "store/retry.py": "def backoff(): ...\n",
    "models/__init__.py": '"""Pure algorithms."""\n',
    "models/shots.py": "from .. import ids\nfrom ..media.decoding import read\nfrom .clusters import fit\n",
    "models/clusters.py": "from media_assets.media import signals\nfrom media_assets.errors import IdError\n",
    "feedback/table.py": "from ..store.catalog import query\n",  # feedback/ without __init__: a namespace package
    "stages/__init__.py": '"""Stages."""\n',
    "stages/frames.py": """
        from typing import TYPE_CHECKING

        from ..store import catalog
        from ..models.shots import detect

        if TYPE_CHECKING:
            from media_assets.warehouse import Warehouse


        def run():
            from media_assets.feedback import table
        """,
    "stages/shots/__init__.py": "from .detect import run\n",  # one stage in a folder: its parts may meet
    "stages/shots/detect.py": "from ...models import shots\n",
    "search/__init__.py": "",
    "search/client.py": "from ..store.catalog import query\nfrom .terms import parse\n",
    "search/terms.py": "import re\n",
    "demo/library.py": "from ..search.client import Client\nfrom ..stages import frames\n",
    "defs/__init__.py": "",
    "defs/assets.py": "import dagster\nfrom dagster_webserver import x\nfrom ..stages import frames, shots\n",
    "apps/cli.py": """
        import click


        def main():
            import dagster

            from ..defs.assets import frames
            from ..definitions import defs
            from ..demo.library import write
        """,
}


def test_a_clean_fake_tree_passes_every_check(tmp_path):
    root = _write(tmp_path, CLEAN_TREE)
    for check in (
        find_import_cycles,
        find_upward_imports,
        find_package_root_imports,
        find_stage_to_stage_imports,
        find_impure_model_imports,
        find_dagster_outside_defs,
        find_unplaced_modules,
        find_missing_imports,
    ):
        assert check(root) == [], check.__name__


def test_imports_resolve_to_the_modules_they_name(tmp_path):
    root = _write(tmp_path, CLEAN_TREE)
    edges = {(i.source.name, i.target) for i in scan(root).imports if i.internal}
    m = PACKAGE
    expected = {
        (m, f"{m}.search.client"),  # relative import in the facade's __init__: against the package itself
        (f"{m}.ids", f"{m}.errors"),
        (f"{m}.store.catalog", f"{m}.warehouse"),  # import a.b.c: the named module
        (f"{m}.store.catalog", f"{m}.store.retry"),  # from . import retry: a submodule
        (f"{m}.models.shots", f"{m}.ids"),  # from .. import ids: a submodule, not the package root
        (f"{m}.models.shots", f"{m}.media.decoding"),
        (f"{m}.models.clusters", f"{m}.media.signals"),
        (f"{m}.stages.frames", f"{m}.store.catalog"),
        (f"{m}.stages.frames", f"{m}.warehouse"),  # under TYPE_CHECKING
        (f"{m}.stages.frames", f"{m}.feedback.table"),  # in a function, through a namespace package
        (f"{m}.stages.shots", f"{m}.stages.shots.detect"),  # relative import in a sub-package's __init__
        (f"{m}.stages.shots.detect", f"{m}.models.shots"),
        (f"{m}.defs.assets", f"{m}.stages.frames"),
        (f"{m}.defs.assets", f"{m}.stages.shots"),  # a sub-package named by from-import: its __init__
        (f"{m}.apps.cli", f"{m}.definitions"),
    }
    assert expected <= edges, expected - edges
    # a name that is not a submodule is taken from the package's __init__, and no parent edges are added
    assert (f"{m}.models.shots", f"{m}.models.clusters") in edges
    assert (f"{m}.media.decoding", f"{m}.errors") in edges
    assert not any(target == f"{m}.store" for _, target in edges)
    assert not any(target == m for source, target in edges if source != m)
    externals = {(i.source.name, i.target) for i in scan(root).imports if not i.internal}
    assert (f"{m}.defs.assets", "dagster_webserver") in externals
    assert (f"{m}.apps.cli", "dagster") in externals


PLANTED = {
    **CLEAN_TREE,
    # a cycle in store/, closed by an import inside a function
    "store/a.py": "from . import b\n",
    "store/b.py": "\n\ndef load():\n    from media_assets.store.a import thing\n",
    # upward: media/ (1) imports stages/ (5), in a method
    "media/x.py": "class Reader:\n    def read(self):\n        from ..stages import y\n",
    "stages/y.py": "from ..media import signals\n",
    # a stage importing another stage, under TYPE_CHECKING
    "stages/p.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from media_assets.stages.q import Q\n",
    "stages/q.py": "class Q: ...\n",
    # a model that persists
    "models/m.py": "def fit():\n    import media_assets.store.catalog\n",
    # Dagster in search/, in a function
    "search/s.py": "def sensor():\n    from dagster import sensor\n",
    # a module in no layer
    "stray.py": "from .ids import make\n",
}


def test_a_fake_tree_with_planted_faults_reports_exactly_those(tmp_path):
    root = _write(tmp_path, PLANTED)
    m = PACKAGE
    cycles = find_import_cycles(root)
    assert cycles == [
        f"{m}/store/a.py:1: cycle {m}.store.a -> {m}.store.b -> {m}.store.a [{m}/store/a.py:1, {m}/store/b.py:4]"
    ]
    assert _places(find_upward_imports(root)) == [f"{m}/media/x.py:3"]
    assert find_upward_imports(root)[0].endswith("x (layer 1, media) imports media_assets.stages.y (layer 5, stages)")
    assert _places(find_stage_to_stage_imports(root)) == [f"{m}/stages/p.py:4"]
    assert _places(find_impure_model_imports(root)) == [f"{m}/models/m.py:2"]
    assert _places(find_dagster_outside_defs(root)) == [f"{m}/search/s.py:2"]
    assert _places(find_unplaced_modules(root)) == [f"{m}/stray.py:1"]
    assert find_package_root_imports(root) == []
    assert find_missing_imports(root) == []


def test_a_fake_tree_with_more_faults(tmp_path):
    """Root imports, models and the warehouse, a three-module cycle, moved modules, shadowed files, dagster_*."""
    root = _write(
        tmp_path,
        {
            **CLEAN_TREE,
            "store/catalog.py": "from media_assets import Warehouse\n\n\ndef f():\n    import media_assets\n",
            "search/terms.py": "from .. import SearchClient\n",  # relative, but still the package root
            "models/clusters.py": "from ..warehouse import Warehouse\nfrom ..stages.frames import x\n",
            "media/a.py": "from . import b\n",
            "media/b.py": "def f():\n    from .c import x\n",
            "media/c.py": "from media_assets.media.a import y\n",
            "stages/frames.py": "from ..catalog import query\nimport media_assets.store.gone\n",
            "search.py": "",  # beside search/: hidden by it
            "util/__init__.py": "",  # a folder that is no layer
            "stages/__init__.py": "from . import frames\n",
            "media/signals.py": "import numpy\n\ntry:\n    import dagster_pipes.context\nexcept ImportError: ...\n",
        },
    )
    m = PACKAGE
    assert _places(find_package_root_imports(root)) == [
        f"{m}/search/terms.py:1",
        f"{m}/store/catalog.py:1",
        f"{m}/store/catalog.py:5",
    ]
    assert _places(find_impure_model_imports(root)) == [f"{m}/models/clusters.py:1", f"{m}/models/clusters.py:2"]
    assert _places(find_upward_imports(root)) == [f"{m}/models/clusters.py:2"]
    assert [p.split(" [")[0] for p in find_import_cycles(root)] == [
        f"{m}/media/a.py:1: cycle {m}.media.a -> {m}.media.b -> {m}.media.c -> {m}.media.a"
    ]
    assert _places(find_missing_imports(root)) == [f"{m}/stages/frames.py:1", f"{m}/stages/frames.py:2"]
    assert _places(find_unplaced_modules(root)) == [f"{m}/search.py:1", f"{m}/util/__init__.py:1"]
    assert _places(find_stage_to_stage_imports(root)) == [f"{m}/stages/__init__.py:1"]
    assert _places(find_dagster_outside_defs(root)) == [f"{m}/media/signals.py:4"]
