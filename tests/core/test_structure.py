"""The package's shape, read from its source with ast (issue 19): no file over 300 lines, no function
over 60, no class over 150; no import circle; the core imports no stage, and a stage imports the
core and earlier stages only, except where the pipeline itself runs the other way (listed below)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = {  # folder -> installed package (pyproject's package-dir)
    "ddpm_deploy": "ddpm_deploy", "train": "ddpm_deploy.train", "export": "ddpm_deploy.export",
    "runtime": "ddpm_deploy.runtime", "serve": "ddpm_deploy.serve", "hardware": "ddpm_deploy.hardware",
}  # fmt: skip
# Stages ordered by who uses whom (not by the data flow): hardware (what the machine has: GPUs,
# TensorRT facts, libraries, doctor) needs only the core; the runtime samples with numpy alone;
# train uses the runtime (distill's teacher, the torch backend); export uses both; serve runs the
# runtime; the CLI assembles everything.
STAGE_ORDER = {
    "core": 0,
    "hardware": 1,
    "runtime": 2,
    "train": 3,
    "export": 4,
    "serve": 5,
    "cli": 6,
}
MAX_FILE, MAX_FUNCTION, MAX_CLASS = 300, 60, 150
OVER_LIMIT: set[str] = set()  # "path:name" known to be over, to be split; an entry needs a reason
# (importer, imported): the few edges that go up the order, each with its reason.
UPWARD = {
    # `python -m ddpm_deploy` is the CLI under another name
    ("ddpm_deploy.__main__", "ddpm_deploy.cli"),
    # the package's public names (`ddpm_deploy.load`), imported from the runtime on first use
    ("ddpm_deploy", "ddpm_deploy.runtime.api"),
    # distill exports its teacher to ONNX to run it on ONNX Runtime (2-4x torch on a CPU)
    ("ddpm_deploy.train.distill", "ddpm_deploy.export.onnx_export"),
}


def _modules() -> dict[str, Path]:
    mods = {}
    for folder, package in PACKAGE_DIRS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = [
                p for p in path.relative_to(ROOT / folder).with_suffix("").parts if p != "__init__"
            ]
            mods[".".join([package, *parts])] = path
    return mods


MODULES = _modules()


def _imports(name: str, path: Path, module_level: bool) -> set[str]:
    """The package modules ``name`` imports (at module level only, or anywhere)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".")[
                    : len(name.split(".")) - node.level + (path.name == "__init__.py")
                ]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    resolved = set()
    for target in found:
        while target and target not in MODULES:
            target = target.rpartition(".")[0]
        if target and target != name:
            resolved.add(target)
    return resolved


def _stage(module: str) -> str:
    part = module.split(".")[1] if module.count(".") else ""
    return part if part in STAGE_ORDER else "core"


def _sizes_over(text: str, rel: str) -> list[str]:
    """What in one file's source is over its limit (OVER_LIMIT's entries excepted)."""
    over = []
    if len(text.splitlines()) > MAX_FILE:
        over.append(f"{rel}: {len(text.splitlines())} lines (at most {MAX_FILE})")
    for node in ast.walk(ast.parse(text)):
        limit = {ast.FunctionDef: MAX_FUNCTION, ast.AsyncFunctionDef: MAX_FUNCTION,
                 ast.ClassDef: MAX_CLASS}.get(type(node))  # fmt: skip
        if limit and _length(node) > limit and f"{rel}:{node.name}" not in OVER_LIMIT:
            over.append(f"{rel}:{node.lineno} {node.name}: {_length(node)} lines (at most {limit})")
    return over


def _upward(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """The edges of ``graph`` that import a later stage."""
    return sorted(
        (name, target)
        for name, targets in graph.items()
        for target in targets
        if STAGE_ORDER[_stage(target)] > STAGE_ORDER[_stage(name)]
    )


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph``, or None."""
    done: set[str] = set()

    def visit(node: str, stack: list[str]) -> list[str] | None:
        if node in stack:
            return stack[stack.index(node) :] + [node]
        if node in done:
            return None
        for target in sorted(graph.get(node, ())):
            found = visit(target, [*stack, node])
            if found:
                return found
        done.add(node)
        return None

    for name in sorted(graph):
        found = visit(name, [])
        if found:
            return found
    return None


# every import, at module level, inside functions and under TYPE_CHECKING
GRAPH = {name: _imports(name, path, module_level=False) for name, path in MODULES.items()}


def _length(node: ast.AST) -> int:
    return node.end_lineno - node.lineno + 1


def test_no_file_function_or_class_over_its_limit():
    over = [o for p in MODULES.values() for o in _sizes_over(p.read_text(), p.relative_to(ROOT).as_posix())]  # fmt: skip
    assert not over, "split by job:\n" + "\n".join(over)


def test_the_size_check_can_fail():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION))
    assert _sizes_over(f"def f():\n{body}\n", "m.py") == [f"m.py:1 f: {MAX_FUNCTION + 1} lines (at most {MAX_FUNCTION})"]  # fmt: skip
    assert _sizes_over("x = 1\n" * (MAX_FILE + 1), "m.py") == [f"m.py: {MAX_FILE + 1} lines (at most {MAX_FILE})"]  # fmt: skip


def test_the_known_exceptions_are_still_over():
    """An entry of OVER_LIMIT that fits now is taken off the list."""
    fits = []
    for entry in OVER_LIMIT:
        rel, name = entry.split(":")
        tree = ast.parse((ROOT / rel).read_text())
        sizes = [_length(n) for n in ast.walk(tree) if getattr(n, "name", None) == name]
        limit = (
            MAX_CLASS
            if any(isinstance(n, ast.ClassDef) and n.name == name for n in ast.walk(tree))
            else MAX_FUNCTION
        )
        if not sizes or max(sizes) <= limit:
            fits.append(entry)
    assert not fits, f"these fit their limit now: drop them from OVER_LIMIT: {fits}"


def test_no_import_circle_of_any_kind():
    """Counting imports inside functions and under TYPE_CHECKING: a type two modules need lives
    where both can import it."""
    circle = _circle(GRAPH)
    assert circle is None, "import circle: " + " -> ".join(circle)


def test_the_import_checks_can_fail():
    assert _circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    graph = {"ddpm_deploy.runtime.x": {"ddpm_deploy.export.y"}, "ddpm_deploy.export.y": set()}
    assert _upward(graph) == [("ddpm_deploy.runtime.x", "ddpm_deploy.export.y")]
    assert _imports("ddpm_deploy.cli", MODULES["ddpm_deploy.cli"], module_level=False)


def test_stages_import_the_core_and_earlier_stages():
    """Only the listed upward edges, each exact, and each still there (a stale entry would let a
    new edge of the same name through unseen)."""
    found = set(_upward(GRAPH))
    wrong = sorted(found - UPWARD)
    stale = sorted(UPWARD - found)
    assert not wrong, "up the stage order (move the shared part down):\n" + "\n".join(f"{a} imports {b}" for a, b in wrong)  # fmt: skip
    assert not stale, f"UPWARD lists edges that are gone: {stale}"


def _architecture_rows() -> dict[str, str]:
    """docs/ARCHITECTURE.md's module table: each module path named in a row's first cell -> the
    row's job."""
    rows = {}
    for line in (ROOT / "docs" / "ARCHITECTURE.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("| `") or len(cells) != 2:
            continue
        for path in cells[0].replace("`", "").split(","):
            if path.strip().endswith(".py"):
                rows[path.strip()] = cells[1]
    return rows


def test_architecture_lists_every_module_with_its_job():
    rows = _architecture_rows()
    modules = {path.relative_to(ROOT).as_posix() for path in MODULES.values()}
    missing = sorted(modules - set(rows))
    gone = sorted(set(rows) - modules)
    jobless = sorted(path for path, job in rows.items() if not job)
    assert not missing, f"docs/ARCHITECTURE.md's module table lacks a line for: {missing}"
    assert not gone, f"docs/ARCHITECTURE.md's module table names modules that are gone: {gone}"
    assert not jobless, f"give these modules their job in docs/ARCHITECTURE.md: {jobless}"


def test_the_schedule_is_computed_in_one_place():
    """Invariant 1: alpha_bar is a cumulative product written once, in ddpm_deploy/schedule.py;
    everything else reads the schedule a model file carries."""
    where = []
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            name = getattr(node, "attr", None) or getattr(node, "id", None)
            if name in ("cumprod", "cumulative_prod"):
                where.append(path.relative_to(ROOT).as_posix())
    assert set(where) <= {"ddpm_deploy/schedule.py"}, f"a second noise schedule in {where}"


def test_every_test_architecture_names_exists():
    """Each invariant names the test that keeps it: that file (and function) must exist."""
    import re

    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    missing = []
    for file, name in re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?", text):
        path = ROOT / file
        if not path.is_file():
            missing.append(file)
        elif name and not re.search(rf"^def {name}\(", path.read_text(), re.MULTILINE):
            missing.append(f"{file}::{name}")
    assert not missing, f"docs/ARCHITECTURE.md names tests that do not exist: {missing}"
