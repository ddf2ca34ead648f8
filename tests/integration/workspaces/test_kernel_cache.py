"""A workspace's first call of an analysis helper loads the kernel compiled into the image."""

import json

CACHE_PROBE = r"""
import json, os, time
from pathlib import Path
import numpy as np
from lnds_spe.analysis import NUMBA_CACHE_DIR, groupby_reduce
from lnds_spe.analysis._reduce import fused_reduce
seed, cache = Path(os.environ["LNDS_SPE_NUMBA_SEED"]), Path(NUMBA_CACHE_DIR)
seeded = {p.relative_to(seed).as_posix() for p in seed.rglob("*") if p.is_file()}
present = {p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.is_file()}
began = time.perf_counter()
out = groupby_reduce(np.arange(1000) % 20, np.arange(1000, dtype=np.float64), 20, ops="mean")
print(json.dumps({"seeded": sorted(seeded), "missing": sorted(seeded - present),
                  "hits": sum(fused_reduce.stats.cache_hits.values()),
                  "misses": sum(fused_reduce.stats.cache_misses.values()),
                  "seconds": time.perf_counter() - began, "mean_of_group_3": float(out["mean"][3])}))
"""


def test_first_group_by_loads_the_kernel_compiled_into_the_image(ws_alice_pa):
    facts = json.loads(ws_alice_pa.run(CACHE_PROBE))
    assert any("fused_reduce" in name and name.endswith(".nbi") for name in facts["seeded"]), \
        f"the image's numba seed holds no group-by kernel: {facts['seeded'][:10]}"
    assert facts["missing"] == [], "the workspace's cache lacks seed files"
    assert (facts["hits"], facts["misses"]) == (1, 0), facts
    assert facts["mean_of_group_3"] == sum(range(3, 1000, 20)) / 50
