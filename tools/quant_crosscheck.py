#!/usr/bin/env python3
"""Cross-check ROCmForge's CPU quantizers against gguf-py (`pip install gguf numpy`).

Usage: quant_crosscheck.py DIR

DIR/manifest.json (written by tests/cpu_quant.rs) lists cases:
  {"name": str, "type": GGML type name (e.g. "Q4_0"), "n": element count,
   "ops": ["quantize", "dequantize"]}
For each case:
  quantize:   reads DIR/<name>.f32 (little-endian f32), writes gguf-py's bytes to DIR/<name>.q.py
  dequantize: reads DIR/<name>.q.rs (bytes from Rust), writes gguf-py's f32 to DIR/<name>.dq.py
  quantize_ggml: like quantize but with ggml's C `quantize_row_<type>_ref` from the shared library
              named by env ROCMFORGE_GGML_QUANTS_LIB (ggml-quants.c built with
              `gcc -O2 -fPIC -shared -Iggml/include -Iggml/src ggml/src/ggml-quants.c -o libq.so`);
              writes DIR/<name>.q.c
DIR/results.json maps "<name>:<op>" to "ok" or "unsupported: <reason>".
Exits 2 with a message if gguf or numpy is missing.
"""
import json
import os
import sys

try:
    import numpy as np
    import gguf
    from gguf import quants
    from gguf.constants import GGMLQuantizationType
except ImportError as e:  # pragma: no cover
    print(f"quant_crosscheck: cannot import gguf/numpy ({e}); run `pip install gguf numpy`", file=sys.stderr)
    sys.exit(2)


def _gguf_version() -> str:
    try:
        from importlib.metadata import version
        return version("gguf")
    except Exception:  # pragma: no cover
        return "?"


_LIB = None


def _ggml_ref(tname: str, x: np.ndarray, nbytes: int) -> np.ndarray:
    import ctypes
    global _LIB
    if _LIB is None:
        path = os.environ.get("ROCMFORGE_GGML_QUANTS_LIB")
        if not path:
            raise NotImplementedError("ROCMFORGE_GGML_QUANTS_LIB not set")
        _LIB = ctypes.CDLL(path, mode=os.RTLD_LAZY | os.RTLD_GLOBAL)
    fn = getattr(_LIB, f"quantize_row_{tname}_ref")
    fn.restype = None
    out = np.zeros(nbytes, dtype=np.uint8)
    xc = np.ascontiguousarray(x, dtype=np.float32)
    fn(xc.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p), ctypes.c_int64(x.size))
    return out


def main() -> int:
    d = sys.argv[1]
    with open(os.path.join(d, "manifest.json")) as f:
        cases = json.load(f)
    results = {}
    for c in cases:
        name, tname, n = c["name"], c["type"], int(c["n"])
        qt = GGMLQuantizationType[tname]
        for op in c["ops"]:
            key = f"{name}:{op}"
            try:
                if op == "quantize":
                    x = np.fromfile(os.path.join(d, name + ".f32"), dtype="<f4")
                    assert x.size == n, (x.size, n)
                    q = quants.quantize(x.reshape(1, n), qt)
                    np.ascontiguousarray(q).view(np.uint8).tofile(os.path.join(d, name + ".q.py"))
                elif op == "dequantize":
                    raw = np.fromfile(os.path.join(d, name + ".q.rs"), dtype=np.uint8)
                    if tname == "F32":
                        y = raw.view("<f4").astype(np.float32)
                    elif tname == "F16":
                        y = raw.view("<f2").astype(np.float32)
                    else:
                        y = quants.dequantize(raw.reshape(1, -1), qt)
                    y = np.ascontiguousarray(y, dtype=np.float32).reshape(-1)
                    assert y.size == n, (y.size, n)
                    y.astype("<f4").tofile(os.path.join(d, name + ".dq.py"))
                elif op == "quantize_ggml":
                    x = np.fromfile(os.path.join(d, name + ".f32"), dtype="<f4")
                    bsz, tsz = gguf.constants.GGML_QUANT_SIZES[qt]
                    if tname == "Q8_1":
                        tsz = 36  # ggml's block_q8_1 (gguf-py lists the old 40-byte layout)
                    out = _ggml_ref(tname.lower().replace("_k", "_K"), x, n // bsz * tsz)
                    out.tofile(os.path.join(d, name + ".q.c"))
                results[key] = "ok"
            except NotImplementedError as e:
                results[key] = f"unsupported: {e}"
    with open(os.path.join(d, "results.json"), "w") as f:
        json.dump({"gguf_version": _gguf_version(), "results": results}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
