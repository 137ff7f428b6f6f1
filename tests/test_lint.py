"""The code's own rules, enforced on every test run: ruff (lint and format) and the import contract
(streamer/ outside its CLI never imports workers/; the two model packages are independent)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["lint-imports"],
    ],
    ids=["ruff-check", "ruff-format", "import-contract"],
)
def test_tool_passes(command):
    result = subprocess.run(
        [str(BIN / command[0]), *command[1:]], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_no_module_imports_itself_round_a_circle():
    """No circles among the modules of streamer/ and workers/ (deferred imports inside functions included): data
    and imports flow one way. Each circle found is named, shortest first."""
    import grimp

    graph = grimp.build_graph("streamer", "workers", cache_dir=None)
    circles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if module == imported or imported not in graph.modules:
                continue
            chain = graph.find_shortest_chain(importer=imported, imported=module)
            if chain:
                circle = " -> ".join((module, *chain))
                circles.append(circle)
    assert not circles, "\n".join(sorted(set(circles), key=len)[:10])
