#!/usr/bin/env python3
"""Torch peers for benches/attention.rs; prints one JSON line last.

  --mode prefill --b B --h H --s S --hd D --causal 0|1     SDPA flash and cuDNN backends (ms, median)
  --mode decode  --b B --hq HQ --hkv HKV --ctx C --hd D    SDPA over contiguous KV (enable_gqa), 1 query token
  --mode check   --dir DIR                                 SDPA on the inputs the bench dumped; rel err of ours
"""
import argparse, json, statistics, sys
import torch
import torch.nn.functional as F
from torch.nn.attention import sdpa_kernel, SDPBackend


def bench(fn, iters=20, warmup=3):
    for _ in range(warmup):
        fn(0)
    ts = []
    for i in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn(i)
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", required=True)
    for k in ["b", "h", "s", "hd", "causal", "hq", "hkv", "ctx"]:
        ap.add_argument("--" + k, type=int, default=0)
    ap.add_argument("--dir", default="")
    a = ap.parse_args()
    dev = "cuda"
    out = {"torch": torch.__version__, "device": torch.cuda.get_device_name()}
    if a.mode == "prefill":
        q, k, v = (torch.randn(a.b, a.h, a.s, a.hd, device=dev, dtype=torch.bfloat16) for _ in range(3))
        for name, be in [("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)]:
            try:
                with sdpa_kernel(be):
                    out[name + "_ms"] = bench(lambda i: F.scaled_dot_product_attention(q, k, v, is_causal=bool(a.causal)), iters=10)
            except Exception as e:  # a backend may be unavailable: say so
                out[name + "_error"] = str(e)[:200]
    elif a.mode == "decode":
        kv_bytes = 2 * a.b * a.hkv * a.ctx * a.hd * 2
        reps = max(1, min(8, -(-200_000_000 // kv_bytes)))
        q = torch.randn(a.b, a.hq, 1, a.hd, device=dev, dtype=torch.bfloat16)
        ks = [torch.randn(a.b, a.hkv, a.ctx, a.hd, device=dev, dtype=torch.bfloat16) for _ in range(reps)]
        vs = [torch.randn(a.b, a.hkv, a.ctx, a.hd, device=dev, dtype=torch.bfloat16) for _ in range(reps)]
        out["sdpa_ms"] = bench(lambda i: F.scaled_dot_product_attention(q, ks[i % reps], vs[i % reps], enable_gqa=True), iters=50)
    elif a.mode == "check":
        meta = json.load(open(a.dir + "/meta.json"))
        s, h, hkv, hd = meta["s"], meta["h"], meta["hkv"], meta["hd"]
        ld = lambda n, shape: torch.from_file(f"{a.dir}/{n}.bin", size=int(torch.tensor(shape).prod()), dtype=torch.float32).reshape(shape).to(dev)
        q = ld("q", [s, h, hd]).transpose(0, 1)[None].to(torch.bfloat16)
        k = ld("k", [s, hkv, hd]).transpose(0, 1)[None].to(torch.bfloat16)
        v = ld("v", [s, hkv, hd]).transpose(0, 1)[None].to(torch.bfloat16)
        ours = ld("o", [s, h, hd]).transpose(0, 1)[None]
        ref = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), is_causal=bool(meta["causal"]), enable_gqa=True)
        tor = F.scaled_dot_product_attention(q, k, v, is_causal=bool(meta["causal"]), enable_gqa=True).double()
        out["ours_vs_f64"] = float((ours.double() - ref).norm() / ref.norm())
        out["torch_bf16_vs_f64"] = float((tor - ref).norm() / ref.norm())
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
