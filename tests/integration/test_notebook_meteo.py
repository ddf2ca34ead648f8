"""The meteo map notebook runs end to end under papermill at a small scale."""

import json
from pathlib import Path

import papermill

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "meteo_map.ipynb"


def test_meteo_notebook_runs_and_draws_the_map(tmp_path):
    out = tmp_path / "meteo_map.out.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK), str(out), kernel_name="python3", cwd=str(tmp_path),
        parameters={"n_stations": 12, "years": 0.1, "n_measurements": 2, "threads": 1,
                    "grid_nx": 30, "grid_ny": 25})
    cells = json.loads(out.read_text())["cells"]
    outputs = [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no map was drawn"
    texts = "".join(str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "map from daily roll-ups" in texts and "pandas: same station means" in texts
