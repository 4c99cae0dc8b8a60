"""The walkthrough notebook runs top to bottom and shows its results (tables, plots)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "transfer_walkthrough.ipynb"


def test_walkthrough_notebook_executes(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    root = str(NOTEBOOK.parents[1])
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = root + (os.pathsep + env_path if env_path else "")
    try:
        client = NotebookClient(
            nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        )
        client.execute()
    finally:
        os.environ["PYTHONPATH"] = env_path
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(
        o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in outputs
    )
    assert "finished:" in text  # both sweeps ran
    assert "umup" in text and "sp" in text
    assert any(w in text for w in ("transfers", "drifts", "inconclusive"))
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2  # the transfer plot and the coordinate check
    assert "blocks.*.attn.qkv.weight" in text  # per-group learning rates of the target
