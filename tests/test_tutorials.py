"""Every tutorial runs top to bottom (in quick mode) as a notebook."""

import os
from pathlib import Path

import jupytext
import nbclient
import pytest

TUTORIALS = sorted((Path(__file__).parents[1] / "tutorials").glob("*.py"))


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_executes(path, reference_data, tmp_path, monkeypatch):
    monkeypatch.setenv("PYROGEN_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = jupytext.read(path)
    client = nbclient.NotebookClient(
        notebook,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    errors = [
        o
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors


def test_there_is_a_tutorial_per_family():
    assert {p.stem for p in TUTORIALS} >= {
        "gaussian_mixture",
        "fourier_density",
        "variational_inference",
        "time_series",
        "vae",
        "autoregressive",
        "flows",
        "diffusion",
        "adversarial",
    }
    assert os.path.getsize(TUTORIALS[0]) > 0
