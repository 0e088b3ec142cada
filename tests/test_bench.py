"""Every bench script runs in --quick mode and ends with one JSON line of figures."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHES = sorted((Path(__file__).parents[1] / "bench").glob("*.py"))


@pytest.mark.parametrize("path", BENCHES, ids=[p.stem for p in BENCHES])
def test_bench_quick_prints_json_figures(path):
    done = subprocess.run(
        [sys.executable, str(path), "--quick"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    ratios = {k: v for k, v in figures.items() if k.endswith("_ratio")}
    assert ratios and all(v > 0 for v in ratios.values())
    assert figures["quick"] is True
