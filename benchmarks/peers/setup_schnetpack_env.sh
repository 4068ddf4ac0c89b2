#!/usr/bin/env bash
# Create the SchNetPack 2.2 peer-benchmark environment (idempotent).
# Usage: bash benchmarks/peers/setup_schnetpack_env.sh
# Result: benchmarks/.venv-schnetpack (git-ignored) with torch 2.9.1 (CPU wheel from PyPI) + schnetpack 2.2.x.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${SCHNETPACK_VENV:-$HERE/../.venv-schnetpack}"
PY312="${PY312:-/root/.pyenv/versions/3.12.1/bin/python}"
TORCH_VERSION="${TORCH_VERSION:-2.9.1}"
SPK_SPEC="${SPK_SPEC:-schnetpack==2.2.*}"

check() {
  "$VENV/bin/python" - "$TORCH_VERSION" <<'PY' 2>/dev/null
import sys
import torch, schnetpack, ase
assert torch.__version__.split("+")[0] == sys.argv[1], torch.__version__
from importlib.metadata import version
v = version("schnetpack")
assert v.startswith("2.2"), v
import schnetpack.md, schnetpack.representation, schnetpack.atomistic
print(f"torch {torch.__version__}, schnetpack {v}, ase {ase.__version__}")
PY
}

if [ -x "$VENV/bin/python" ] && check; then
  echo "SchNetPack venv at $VENV already works; nothing to do."
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PY312" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --upgrade pip
# torch first (same version as painn_deploy), then schnetpack pinned against it.
"$VENV/bin/python" -m pip install "torch==$TORCH_VERSION"
"$VENV/bin/python" -m pip install "$SPK_SPEC" "torch==$TORCH_VERSION" ase
check
