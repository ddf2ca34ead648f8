#!/usr/bin/env bash
# Create .venv-clkhash: a separate virtualenv holding the reference clkhash 0.18.3 and anonlink 0.15.3
# (clkhash pins cryptography<41, which conflicts with the project). Used only by tests and benchmarks
# as the linkage peer: bit-for-bit CLK agreement and encoding/matching speed.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${CLKHASH_VENV:-$repo_root/.venv-clkhash}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "clkhash==0.18.3" "anonlink==0.15.3"
"$venv/bin/python" -c "import clkhash, anonlink, importlib.metadata as m; print('clkhash', m.version('clkhash'), 'anonlink', m.version('anonlink'), 'ready in', '$venv')"
