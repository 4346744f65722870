"""Every notebook runs top to bottom (on tiny settings, in a temporary work directory)."""
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch, tiny_sweep, tiny_influence):
    monkeypatch.setenv("MEMJAX_NOTEBOOK_WORKDIR", str(tmp_path / "run"))
    monkeypatch.setenv("MEMJAX_NOTEBOOK_SWEEP", str(tiny_sweep))
    monkeypatch.setenv("MEMJAX_NOTEBOOK_INFLUENCE", str(tiny_influence))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) >= 1  # the figures were drawn
