"""The numba cache folder is filled from a seed of kernels compiled in advance (the image's)."""

import os
import subprocess
import sys
from pathlib import Path

from lnds_spe.analysis._cache import SEED_ENV, seed_cache


def make_seed(root: Path) -> Path:
    seed = root / "seed"
    (seed / "analysis_abc").mkdir(parents=True)
    (seed / "analysis_abc" / "_reduce.fused_reduce-188.py311.nbi").write_bytes(b"index")
    (seed / "analysis_abc" / "_reduce.fused_reduce-188.py311.1.nbc").write_bytes(b"code" * 100)
    return seed


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in folder.rglob("*") if p.is_file()}


def test_an_empty_folder_gets_a_copy_of_the_seed_and_nothing_is_left_beside_it(tmp_path):
    seed = make_seed(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    assert seed_cache(cache, seed) is True
    assert files(cache) == files(seed)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "seed"]


def test_a_folder_holding_kernels_or_a_missing_seed_is_left_as_it_is(tmp_path):
    seed = make_seed(tmp_path)
    cache = tmp_path / "cache"
    (cache / "own").mkdir(parents=True)
    (cache / "own" / "kernel.nbi").write_bytes(b"mine")
    assert seed_cache(cache, seed) is False
    assert files(cache) == {"own/kernel.nbi": b"mine"}
    empty = tmp_path / "empty"
    empty.mkdir()
    assert seed_cache(empty, tmp_path / "no-such-seed") is False
    assert list(empty.iterdir()) == []


def test_importing_the_helpers_seeds_the_cache_folder_numba_is_given(tmp_path):
    seed = make_seed(tmp_path)
    cache = tmp_path / "fresh" / "numba"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), SEED_ENV: str(seed)}
    out = subprocess.run([sys.executable, "-c", "import lnds_spe.analysis as a; "
                          "print(a.NUMBA_CACHE_DIR)"], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == str(cache)
    assert files(cache) == files(seed)
