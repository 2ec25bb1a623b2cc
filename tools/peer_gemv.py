#!/usr/bin/env python3
"""Peer for benches/quant.rs: f16 GEMV through torch (cuBLAS): W [N,K] @ x [K,1] and [K,8].

Usage: peer_gemv.py N K. Rotates enough W copies to exceed L2; CUDA-event timed median of 50.
Prints one JSON line: {"n":..,"k":..,"b1_ms":..,"b8_ms":..,"device":..}.
"""
import json, sys
import torch

n, k = int(sys.argv[1]), int(sys.argv[2])
dev = torch.device("cuda")
copies = max(2, -(-200_000_000 // (n * k * 2)))
ws = [torch.randn(n, k, device=dev, dtype=torch.float16) for _ in range(copies)]
res = {"n": n, "k": k, "device": torch.cuda.get_device_name(0), "copies": copies}
for b in (1, 8):
    x = torch.randn(k, b, device=dev, dtype=torch.float16)
    for w in ws:
        torch.matmul(w, x)
    times = []
    for _ in range(50):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for w in ws:
            torch.matmul(w, x)
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e) / len(ws))
    times.sort()
    res[f"b{b}_ms"] = times[len(times) // 2]
print(json.dumps(res))
