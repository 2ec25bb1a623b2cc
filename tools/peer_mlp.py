#!/usr/bin/env python3
"""Torch peers for benches/mlp.rs, timed in the same GPU run: RMSNorm (F.rms_norm, eager and
torch.compile), add + RMSNorm, SwiGLU (F.silu(g) * u, eager and compiled), and f16 GEMMs
(torch.matmul -> cuBLAS). Prints one JSON line: {"key": median_ms, ...}; keys as the bench asks.

usage: peer_mlp.py '{"norm": [[rows, hidden], ...], "swiglu": [[rows, inter], ...], "gemm": [[M, N, K], ...]}'
"""
import json
import sys

import torch
import torch.nn.functional as F


def median_ms(fn, iters=30, warmup=5):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


def rotating(make, bytes_each, total=160 << 20):
    n = max(2, min(16, -(-total // max(bytes_each, 1))))
    return [make() for _ in range(n)]


def main():
    req = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    dev, dt = "cuda", torch.float16
    out = {"torch": torch.__version__, "device": torch.cuda.get_device_name()}
    eps = 1e-6

    def rms(x, w):
        return F.rms_norm(x, (x.shape[-1],), w, eps)

    def add_rms(x, r, w):
        h = x + r
        return F.rms_norm(h, (h.shape[-1],), w, eps), h

    def swiglu(g, u):
        return F.silu(g) * u

    crms, cadd, cswi = torch.compile(rms), torch.compile(add_rms), torch.compile(swiglu)
    for rows, hidden in req.get("norm", []):
        xs = rotating(lambda: torch.randn(rows, hidden, device=dev, dtype=dt), rows * hidden * 2)
        rs = rotating(lambda: torch.randn(rows, hidden, device=dev, dtype=dt), rows * hidden * 2)
        w = torch.randn(hidden, device=dev, dtype=dt)
        i = [0]

        def nxt():
            i[0] += 1
            return i[0] % len(xs)

        key = f"{rows}x{hidden}"
        out[f"rms_eager_{key}"] = median_ms(lambda: rms(xs[nxt()], w))
        out[f"rms_compile_{key}"] = median_ms(lambda: crms(xs[nxt()], w))
        out[f"rms_add_eager_{key}"] = median_ms(lambda: add_rms(xs[nxt()], rs[i[0] % len(rs)], w))
        out[f"rms_add_compile_{key}"] = median_ms(lambda: cadd(xs[nxt()], rs[i[0] % len(rs)], w))
        del xs, rs
    for rows, inter in req.get("swiglu", []):
        gs = rotating(lambda: torch.randn(rows, inter, device=dev, dtype=dt), rows * inter * 2)
        us = rotating(lambda: torch.randn(rows, inter, device=dev, dtype=dt), rows * inter * 2)
        i = [0]

        def nxt():
            i[0] += 1
            return i[0] % len(gs)

        key = f"{rows}x{inter}"
        out[f"swiglu_eager_{key}"] = median_ms(lambda: swiglu(gs[nxt()], us[i[0] % len(us)]))
        out[f"swiglu_compile_{key}"] = median_ms(lambda: cswi(gs[nxt()], us[i[0] % len(us)]))
        del gs, us
    for m, n, k in req.get("gemm", []):
        x = torch.randn(m, k, device=dev, dtype=dt)
        ws = rotating(lambda: torch.randn(n, k, device=dev, dtype=dt), n * k * 2)
        i = [0]

        def mm():
            i[0] += 1
            return torch.matmul(x, ws[i[0] % len(ws)].t())

        out[f"matmul_{m}x{n}x{k}"] = median_ms(mm)
        del ws
    print(json.dumps(out))


if __name__ == "__main__":
    main()
