#!/usr/bin/env bash
# Create .venv-acro: a separate virtualenv holding the reference ACRO 1.0.2 (it pins pandas<=2.3.3,
# which conflicts with the project's pandas 3). Used only by tests and benchmarks as a peer.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${ACRO_VENV:-$repo_root/.venv-acro}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "acro==1.0.2" "pyarrow>=16"
"$venv/bin/python" -c "import acro, importlib.metadata as m; print('acro', m.version('acro'), 'ready in', '$venv')"
