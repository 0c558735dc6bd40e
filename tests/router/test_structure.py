"""router/ stays a small stdlib + boto3 package without import cycles (issue 12 item 5)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROUTER = Path(__file__).parents[2] / "router"
ALLOWED_THIRD_PARTY = {"boto3", "botocore", "wire"}  # wire: the project's stdlib OpenAI package, vendored


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(ROUTER.glob("*.py")):
        mod = f"router.{path.stem}"
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                deps.add(node.module)
                if node.module == "router":
                    deps.update(f"router.{a.name}" for a in node.names)
        graph[mod] = deps
    return graph


def test_only_stdlib_boto3_and_router() -> None:
    for mod, deps in _imports().items():
        for dep in deps:
            top = dep.split(".")[0]
            assert top == "router" or top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY, (mod, dep)


def test_no_import_cycle() -> None:
    graph = {m: {d for d in deps if d.startswith("router.") and d in _imports()} for m, deps in _imports().items()}
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in graph[node]:
            if state.get(dep) == 1:
                raise AssertionError(" -> ".join([*stack[stack.index(dep) :], dep]) if dep in stack else dep)
            if dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for mod in graph:
        if mod not in state:
            visit(mod, [mod])


def test_words_module_is_data_only() -> None:
    tree = ast.parse((ROUTER / "words.py").read_text(encoding="utf-8"))
    assert not [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]
    assert all(isinstance(n, ast.Assign | ast.AnnAssign | ast.Expr | ast.ImportFrom) for n in tree.body), (
        "router/words.py holds tables only"
    )


def test_one_breaker_class_in_the_project() -> None:
    root = ROUTER.parent
    hits = sorted(
        str(p.relative_to(root))
        for folder in ("router", "local", "wire", "inference")
        for p in (root / folder).rglob("*.py")
        if "class CircuitBreaker" in p.read_text(encoding="utf-8")
    )
    assert hits == ["wire/breaker.py"]
