"""The walkthrough notebook runs top to bottom and shows its results (tables, plots).

The test shortens the sweeps' training (one cell added after the one that sets `common`):
what is checked (every cell runs, both sweeps finish, the analysis gives a verdict, the two
figures and the target's per-group learning rates are shown) does not depend on how long
the proxies train, and the notebook's own training costs most of its run time.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "transfer_walkthrough.ipynb"
SHORT_TRAINING = (
    'common["train"] = {"steps": 8, "batch_size": 4, "eval_batches": 1, "final_window": 4}'
)


def _shorten_training(nb) -> None:
    """Insert a cell that shortens `common["train"]` right after the cell defining it."""
    (at,) = [i for i, c in enumerate(nb.cells) if "common = {" in c.source]
    assert '"train": {' in nb.cells[at].source  # what the added cell replaces
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(SHORT_TRAINING))


def test_walkthrough_notebook_executes(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    _shorten_training(nb)
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
