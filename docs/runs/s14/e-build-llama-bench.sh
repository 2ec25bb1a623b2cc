#!/usr/bin/env bash
# llama-bench only, from ../shared/peers/build-llama.cpp's configuration (CUDA sm_90)
set -euo pipefail
src=$1; out=$2
mkdir -p "$out/src"
tar xzf "$src" -C "$out/src"
cmake -S "$out/src/llama.cpp" -B "$out" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_NATIVE=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_CURL=OFF \
  -DCMAKE_RUNTIME_OUTPUT_DIRECTORY="$out/bin" > "$out/cmake.log" 2>&1 || { tail -30 "$out/cmake.log"; exit 1; }
ninja -C "$out" llama-bench > "$out/ninja.log" 2>&1 || { tail -40 "$out/ninja.log"; exit 1; }
ls "$out/bin"
