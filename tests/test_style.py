"""The code's shape: short functions, so that each does one thing."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_function_in_the_framework_is_over_80_lines():
    long = []
    for path in sorted((ROOT / "pyrogen").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 80:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length})")
    assert not long, long
