"""The cross-border linkage notebook runs top to bottom under papermill and records its results."""

import json
from pathlib import Path

import papermill
from jupyter_client.kernelspec import KernelSpecManager

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "cross_border_linkage.ipynb"


def test_cross_border_notebook_links_and_uploads(tmp_path):
    specs = KernelSpecManager().find_kernel_specs()
    assert "python3" in specs, f"no 'python3' Jupyter kernel (ipykernel) found; have {specs}"
    executed = tmp_path / "executed.ipynb"
    out = tmp_path / "results"
    papermill.execute_notebook(
        str(NOTEBOOK), str(executed), parameters={"output_folder": str(out), "n_people": 2000},
        kernel_name="python3", cwd=str(tmp_path), progress_bar=False,
    )
    results = json.loads((out / "results.json").read_text())
    assert results["people"] == {"lu": 1600, "fr": 1600, "both": 1200}
    assert results["precision"] >= 0.98 and results["recall"] >= 0.98
    assert results["pairs"] == results["linked_rows"] == results["rows_in_project"]
    assert results["project_columns"] == ["linkage_key", "income", "diagnosis"]
    assert results["keys_shared"] and results["audit_chain_ok"]
    assert results["pseudonym_length"] == [13]
    assert results["identifiers_in_project"] == 0 and not results["plaintext_in_store"]
