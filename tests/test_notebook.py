"""The quickstart notebook is stored without outputs and runs end to end (tiny settings via env vars)."""

import os
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


def test_notebook_is_stored_without_outputs():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "the quickstart has no code cells"
    assert all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.slow
def test_notebook_runs_with_tiny_settings(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    env = {"ZETT_NB_BASE": "tiny-random", "ZETT_NB_TARGET": "sp-botchan-unigram-1k", "ZETT_NB_MAX_BYTES": "2000",
           "ZETT_NB_OUT": str(tmp_path / "transferred"), "MPLBACKEND": "Agg"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)  # the kernel inherits this process's environment
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "| base | original |" in text and "| sp-botchan-unigram-1k | hypernet |" in text
    assert "saved to" in text
    assert (tmp_path / "transferred" / "config.json").exists()
    assert os.environ["ZETT_NB_BASE"] == "tiny-random"
