#!/usr/bin/env bash
# Build llama.cpp's reference quantizers (ggml/src/ggml-quants.c) as a shared library, so that
# tests/cpu_quant.rs can check our quantizers bit for bit against ggml's `quantize_row_*_ref` for the
# formats gguf-py cannot quantize (K-quants, Q8_1, Q8_K). The source comes from the llama.cpp tree
# vendored in llama-cpp-python's source distribution on PyPI (pinned). Nothing of it is committed.
#
# usage: tools/build_ggml_ref.sh [OUT.so]   (default target/ggml-ref/libggml_quants_ref.so)
set -euo pipefail
out=${1:-target/ggml-ref/libggml_quants_ref.so}
[ -f "$out" ] && { echo "$out exists"; exit 0; }
ver=0.3.36
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# `pip download --no-binary` would build the sdist's build dependencies (cmake) from source just to read
# its metadata; fetch the archive itself from the package index and check its pinned digest instead.
python3 - "$work" "$ver" <<'PY'
import hashlib, re, sys, urllib.request
work, ver = sys.argv[1], sys.argv[2]
want = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
index = urllib.request.urlopen("https://pypi.org/simple/llama-cpp-python/", timeout=60).read().decode()
url = next(u for u in re.findall(r'href="([^"#]+)', index) if u.endswith(f"llama_cpp_python-{ver}.tar.gz"))
data = urllib.request.urlopen(url, timeout=300).read()
if hashlib.sha256(data).hexdigest() != want:
    sys.exit("llama-cpp-python sdist digest mismatch")
open(f"{work}/llama_cpp_python-{ver}.tar.gz", "wb").write(data)
PY
tar -C "$work" -xzf "$work"/llama_cpp_python-$ver.tar.gz --wildcards \
  '*/vendor/llama.cpp/ggml/src/ggml-quants.c' '*/vendor/llama.cpp/ggml/src/*.h' '*/vendor/llama.cpp/ggml/include/*.h'
g=$(echo "$work"/llama_cpp_python-$ver/vendor/llama.cpp/ggml)
mkdir -p "$(dirname "$out")"
# Only the scalar reference quantizers are called; the few ggml symbols they name stay unresolved
# (the library is opened with RTLD_LAZY and those paths are never taken).
gcc -O2 -fPIC -shared -I"$g/include" -I"$g/src" "$g/src/ggml-quants.c" -o "$out"
echo "built $out from llama.cpp in llama-cpp-python $ver"
