#!/usr/bin/env bash
# Install what ROCmForge needs on a machine without GPU (idempotent; skips what is there):
#  - Debian's HIP 5.2 (libamdhip64-dev: hipRTC inside libamdhip64.so.5) for gfx90a/gfx1030 compiles
#  - NVRTC and the CUDA headers from PyPI (nvidia-cuda-nvrtc-cu12, nvidia-cuda-runtime-cu12) for sm_XX
#  - gguf-py and numpy (quantization cross-checks), the SmolLM2-135M Q4_1 and Gemma 3 270M Q4_K_M GGUFs (tools/models.sh, linked under .model/)
#  - ggml's reference quantizers built from llama.cpp's source (tools/build_ggml_ref.sh)
# HIP 6.4 (gfx1100/gfx1200/gfx942/gfx950) lives in a Debian unstable root made by ../shared/tools/rocm-chroot.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! ls /usr/lib/x86_64-linux-gnu/libamdhip64.so.5 >/dev/null 2>&1 && ! ls /opt/rocm/lib/libamdhip64.so* >/dev/null 2>&1; then
  sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_ apt-get install -y -qq libamdhip64-dev >/dev/null
fi
py_has() { python3 -c "import importlib.util,sys; sys.exit(0 if all(importlib.util.find_spec(m) for m in sys.argv[1:]) else 1)" "$@" 2>/dev/null; }
if ! py_has nvidia.cuda_nvrtc nvidia.cuda_runtime gguf numpy openai; then
  python3 -m pip install -q nvidia-cuda-nvrtc-cu12 nvidia-cuda-runtime-cu12 gguf numpy openai
fi
bash tools/models.sh
bash tools/build_ggml_ref.sh >/dev/null
echo "setup: hipRTC (HIP 5.2), NVRTC + CUDA headers, gguf-py, SmolLM2 GGUF and ggml reference quantizers are in place"
