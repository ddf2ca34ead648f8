"""A finalised session opens in SACRO-Viewer's reader code path.

`open_like_sacro_viewer` restates the checks of SACRO-Viewer's `sacro/models.py`
(`ACROOutputs.__post_init__` and `annotate`) and `sacro/versioning.py` (`check_version`
against ACRO_SUPPORTED_VERSION "0.4.x"), read from AI-SDC/SACRO-Viewer; nothing is fetched.
"""

import hashlib
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from lnds_spe.sdc import ACRO

SUPPORTED = (0, 4)


def open_like_sacro_viewer(path: Path) -> dict:
    """results.json loaded and annotated as SACRO-Viewer does; raises where it would."""
    raw = json.loads(path.read_text())
    assert "version" in raw and "results" in raw
    for result in raw["results"].values():
        assert "files" in result and len(result["files"]) > 0
        for filedata in result["files"]:
            assert "name" in filedata
    major, minor, *_ = raw["version"].split(".")
    assert (int(major), int(minor)) >= SUPPORTED, f"unsupported ACRO version {raw['version']}"
    checksums = path.parent / "checksums"
    for metadata in raw["results"].values():
        for filedata in metadata["files"]:
            digest = (checksums / (filedata["name"] + ".txt")).read_text(encoding="utf8")
            actual = hashlib.sha256((path.parent / filedata["name"]).read_bytes()).hexdigest()
            filedata["checksum_valid"] = digest == actual
            cell_index = defaultdict(list)
            for flag, indices in filedata.get("sdc", {}).get("cells", {}).items():
                for x, y in indices:
                    cell_index[f"{x},{y}"].append(flag)
            filedata["cell_index"] = cell_index
    # the front end reads these fields of every output (assets/src/scripts/_output-click.js)
    for metadata in raw["results"].values():
        _ = (metadata["status"], metadata["timestamp"], metadata["properties"]["method"],
             metadata["type"], metadata["summary"], metadata["comments"], metadata["exception"])
    return raw["results"]


def test_session_opens_in_sacro_viewer(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = [("North", "F")] * 3 + [("North", "M")] * 30 + [("South", "F")] * 25 + \
        [("South", "M")] * 28
    df = pd.DataFrame(rows, columns=["region", "sex"])
    df["income"] = np.linspace(1000.0, 5000.0, len(df))
    session = ACRO(suppress=False)
    session.crosstab(df.region, df.sex)
    session.pivot_table(df, index="region", columns="sex", values="income", aggfunc="sum")
    session.hist(df, "income", bins=3)
    note = tmp_path / "notes.txt"
    note.write_text("free text")
    session.custom_output(str(note))
    session.finalise("release", "json")
    results = open_like_sacro_viewer(tmp_path / "release" / "results.json")
    assert list(results) == ["output_0", "output_1", "output_2", "output_3"]
    assert [r["status"] for r in results.values()] == ["fail", "fail", "pass", "review"]
    assert all(f["checksum_valid"] for r in results.values() for f in r["files"])
    crosstab = results["output_0"]["files"][0]
    assert crosstab["cell_index"]["0,0"] == ["MinimumThresholdCheck"]
    assert set(crosstab["sdc"]["cells"]) >= {"MinimumThresholdCheck", "PresenceOfZeroCheck"}
    assert "MinimumThresholdCheck" in results["output_1"]["files"][0]["cell_index"]["0,0"]
    assert {"fair", "outcome"} <= set(results["output_1"])
