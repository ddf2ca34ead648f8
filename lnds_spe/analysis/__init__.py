"""Numba-accelerated analysis helpers for researchers inside a workspace.

NUMBA_CACHE_DIR is pointed at a writable per-user folder before numba loads, so compiled
kernels are cached even where site-packages is read-only.
"""

from lnds_spe.analysis._cache import ensure_numba_cache_dir

NUMBA_CACHE_DIR = ensure_numba_cache_dir()

from lnds_spe.analysis._inputs import AnalysisInputError  # noqa: E402
from lnds_spe.analysis.groupby import factorize, groupby_keys, groupby_reduce, time_bucket  # noqa: E402
from lnds_spe.analysis.linkage import dice_candidates, dice_similarity  # noqa: E402
from lnds_spe.analysis.spatial import idw_grid, knn, knn_idw  # noqa: E402
from lnds_spe.analysis.timeseries import TimeSeriesStore, window_scan  # noqa: E402

__all__ = ["NUMBA_CACHE_DIR", "AnalysisInputError", "TimeSeriesStore", "dice_candidates",
           "dice_similarity", "factorize", "groupby_keys", "groupby_reduce", "idw_grid", "knn", "knn_idw",
           "time_bucket", "window_scan"]
