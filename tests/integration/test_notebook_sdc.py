"""The researcher's SDC notebook runs top to bottom under papermill and writes a release folder."""

import json
from pathlib import Path

import papermill
from jupyter_client.kernelspec import KernelSpecManager

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "sdc_session.ipynb"


def test_sdc_notebook_runs(tmp_path):
    specs = KernelSpecManager().find_kernel_specs()
    assert "python3" in specs, f"no 'python3' Jupyter kernel (ipykernel) found; have {specs}"
    executed = tmp_path / "executed.ipynb"
    release = tmp_path / "release"
    papermill.execute_notebook(
        str(NOTEBOOK), str(executed), parameters={"output_folder": str(release)},
        kernel_name="python3", cwd=str(tmp_path), progress_bar=False,
    )
    results = json.loads((release / "results.json").read_text())["results"]
    assert [r["type"] for r in results.values()] == ["table", "table", "regression", "histogram"]
    assert results["output_0"]["status"] == "review"  # Islands suppressed
    assert (release / "age_histogram.png").is_file()
    assert not any("summary" in p.name for p in release.iterdir())
