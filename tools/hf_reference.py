#!/usr/bin/env python3
"""Reference logits and greedy continuations from HF transformers for the two real GGUF models.

Usage (CPU only; needs torch, transformers, accelerate, gguf, sentencepiece, protobuf):
    python tools/hf_reference.py [--models smollm2,gemma3] [--model-dir .model] [--out tests/data/hf]

For each model, transformers loads the GGUF itself (dequantized to float32) together with the
tokenizer that transformers builds from the GGUF's tokenizer.* keys. For each of 8 prompts:
  * prompt_ids: HF's tokenization (SmolLM2 chat prompts: tokenizer.apply_chat_template(...,
    add_generation_prompt=True); Gemma: plain text, BOS added by its tokenizer),
  * continuation_ids: 64 greedy tokens, pure argmax of HF's logits at every step with a KV cache;
    EOS is neither suppressed nor a stop (generation always runs 64 steps),
  * one teacher-forced forward over prompt+continuation (no cache): for the last 65 positions
    (last prompt position .. last continuation position) the top-10 ids/logits and the top1-top2 gap,
    and the full logit rows of a few positions, as float16, in <out>/<model>/logits.f16.
See tests/data/README.md for the file formats.
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

MODELS = {
    "smollm2": {
        "gguf": "smollm2-135m-instruct-q4_1.gguf",
        "kwargs": {},
        "full_rows_k": [0, 9, 18, 27, 36, 45, 54, 64],  # offsets into the last 65 positions
    },
    "gemma3": {
        "gguf": "gemma-3-270m-q4_k_m.gguf",
        "kwargs": {"attn_implementation": "eager"},
        "full_rows_k": [0, 32, 64],
    },
}
N_NEW = 64
TOPK = 10

# ---------------------------------------------------------------------------------------------
# Deterministic long texts (no randomness: index arithmetic over fixed word lists).
TOWNS = ["Millbrook", "Ashford", "Carrow", "Dunmere", "Elston", "Fairholt", "Greywater", "Hollin",
         "Ivybridge", "Juniper Falls", "Kestrel", "Lowmoor", "Marrowby"]
BUILDINGS = ["library", "bridge", "observatory", "bakery", "railway station", "lighthouse",
             "music hall", "water mill", "school", "harbour wall", "clock tower"]
SCIENCE = ["the orbit of a comet", "the freezing point of salt water", "the speed of sound in air",
           "the growth of oak trees", "the migration of swallows", "the tides of the northern sea",
           "the pressure of steam in a boiler", "the colour of distant stars"]
FOODS = ["barley soup", "apple pie", "smoked fish", "rye bread", "honey cake", "onion stew",
         "cheese dumplings", "plum jam", "roasted chestnuts"]
TOOLS = ["a compiler", "a spreadsheet", "a weather model", "a ledger program", "a map of the roads",
         "a printing press", "a telegraph line"]


def long_history(n_sections: int, tail: str) -> str:
    parts = []
    for i in range(1, n_sections + 1):
        town = TOWNS[(i * 5) % len(TOWNS)]
        building = BUILDINGS[(i * 3) % len(BUILDINGS)]
        year = 1700 + 11 * i
        people = 40 + 37 * i
        sci = SCIENCE[(i * 7) % len(SCIENCE)]
        food = FOODS[(i * 2) % len(FOODS)]
        tool = TOOLS[i % len(TOOLS)]
        parts.append(
            f"Section {i}. In the year {year}, the town of {town} built a {building} that could hold "
            f"{people} people. Its keeper, who studied {sci}, wrote that the winter was "
            f"{'mild' if i % 3 else 'harsh'} and that {food} was served on every holiday. "
            f"Later the records were copied with {tool}, and the copy was checked {i % 4 + 2} times.")
    return "\n".join(parts) + "\n" + tail


def long_essay(n_paragraphs: int, tail: str) -> str:
    subjects = [
        ("rivers", "carry sediment from the mountains to the sea, and their deltas change shape every few decades"),
        ("compilers", "translate source code into machine instructions, and a good one removes redundant work"),
        ("bread", "rises because yeast produces carbon dioxide, which is trapped by the gluten network"),
        ("planets", "move in elliptical orbits, and their speed is greatest when they are closest to the sun"),
        ("languages", "borrow words from their neighbours, so a single word can travel across many countries"),
        ("bridges", "must carry their own weight as well as the load of traffic and the force of the wind"),
        ("memory chips", "store bits as electric charge, and the charge slowly leaks away unless it is refreshed"),
        ("forests", "exchange water with the air, and a large forest can change the rainfall of a region"),
    ]
    parts = []
    for i in range(n_paragraphs):
        name, fact = subjects[i % len(subjects)]
        k = i // len(subjects) + 1
        parts.append(
            f"Paragraph {i + 1} (part {k} about {name}). It is often said that {name} {fact}. "
            f"In example number {3 * i + 7}, a student measured this {k + 1} times and found a value "
            f"close to {(i * 13) % 97 + 0.5}. The notes for this example were filed under the letter "
            f"{chr(ord('A') + i % 26)}.")
    return "\n\n".join(parts) + "\n\n" + tail


def prompts_for(model_key: str):
    """List of dicts: name, text (plain) or messages (chat)."""
    # The question asks about section 2, far more than Gemma's 512-token sliding window before the end.
    i = 2
    q = (f"Question: In which year did the town of {TOWNS[(i * 5) % len(TOWNS)]} build its "
         f"{BUILDINGS[(i * 3) % len(BUILDINGS)]}, and what did its keeper study?\nAnswer:")
    long1 = {"name": "long_history", "text": long_history(16, q)}
    long2 = {"name": "long_essay",
             "text": long_essay(18, "Summary of the notes above, paragraph by paragraph:\nParagraph 1:")}
    short = [
        {"name": "capital", "text": "The capital of France is"},
        {"name": "code", "text": "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"},
        {"name": "list", "text": "Things to pack for a weekend hiking trip:\n1. A warm jacket\n2."},
    ]
    if model_key == "smollm2":
        chat = [
            {"name": "chat_capital", "messages": [{"role": "user", "content": "What is the capital of France?"}]},
            {"name": "chat_code", "messages": [{"role": "user", "content":
                                                "Write a Python function that reverses a string."}]},
            {"name": "chat_multiturn", "messages": [
                {"role": "system", "content": "You are a concise assistant. Answer in one sentence."},
                {"role": "user", "content": "How many legs does a spider have?"},
                {"role": "assistant", "content": "A spider has eight legs."},
                {"role": "user", "content": "And an insect?"}]},
        ]
        return short + [long1, long2] + chat
    extra = [
        {"name": "question", "text": "Question: Why is the sky blue?\nAnswer:"},
        {"name": "story", "text": "Once upon a time, in a small village by the sea, there lived"},
        {"name": "translate", "text": "English: Good morning, how are you?\nFrench:"},
    ]
    return short + extra + [long1, long2]


# ---------------------------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def q4_1_dequant_independent(raw: np.ndarray, n_rows: int, n_cols: int) -> np.ndarray:
    """Q4_1 from the raw bytes, written here (block: f16 d, f16 m, 16 bytes of nibbles; x = d*q + m)."""
    blocks = raw.reshape(-1).view(np.uint8).reshape(-1, 20)
    d = blocks[:, 0:2].copy().view(np.float16).astype(np.float32)
    m = blocks[:, 2:4].copy().view(np.float16).astype(np.float32)
    qs = blocks[:, 4:]
    lo = (qs & 0x0F).astype(np.float32)
    hi = (qs >> 4).astype(np.float32)
    q = np.concatenate([lo, hi], axis=1)  # element j<16: low nibble of byte j; j>=16: high nibble of byte j-16
    return (d * q + m).reshape(n_rows, n_cols)


def llama_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's convert permutation of q/k rows (HF rotate-half layout -> GGUF interleaved layout)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def dequant_check(model_key, model, gguf_path):
    """Compare HF's float32 parameters with the GGUF tensors dequantized by gguf-py (and, for Q4_1,
    by an independent decoder above). Returns a dict for ref.json."""
    import torch
    from gguf import GGUFReader, dequantize
    r = GGUFReader(str(gguf_path))
    t = {x.name: x for x in r.tensors}
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    out = {"method": ("transformers calls gguf-py's gguf.dequantize(tensor.data, tensor.tensor_type) "
                      "(numpy reference dequantizers) on every tensor, then casts to the requested dtype "
                      "(float32); there is no requantization and no fused/approximate path")}
    checks = {}

    def cmp(label, a, b):
        checks[label] = {"max_abs_diff": float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))),
                         "shape": list(a.shape)}

    if model_key == "smollm2":
        n_head, n_kv = model.config.num_attention_heads, model.config.num_key_value_heads
        for blk in (0, 29):
            for gname, hname in (("attn_v", "v_proj"), ("attn_output", "o_proj")):
                g = t[f"blk.{blk}.{gname}.weight"]
                hf = sd[f"model.layers.{blk}.self_attn.{hname}.weight"]
                cmp(f"blk.{blk}.{gname} ({g.tensor_type.name}) vs gguf.dequantize", hf, dequantize(g.data, g.tensor_type))
                cmp(f"blk.{blk}.{gname} ({g.tensor_type.name}) vs independent Q4_1 decoder", hf,
                    q4_1_dequant_independent(np.asarray(g.data), *hf.shape))
            for gname, hname, nh in (("attn_q", "q_proj", n_head), ("attn_k", "k_proj", n_kv)):
                g = t[f"blk.{blk}.{gname}.weight"]
                hf = sd[f"model.layers.{blk}.self_attn.{hname}.weight"]
                cmp(f"blk.{blk}.{gname} ({g.tensor_type.name}) vs llama.cpp-permuted HF weight",
                    llama_permute(hf, nh), dequantize(g.data, g.tensor_type))
            for gname, hname in (("ffn_gate", "gate_proj"), ("ffn_up", "up_proj"), ("ffn_down", "down_proj")):
                g = t[f"blk.{blk}.{gname}.weight"]
                cmp(f"blk.{blk}.{gname} ({g.tensor_type.name}) vs gguf.dequantize",
                    sd[f"model.layers.{blk}.mlp.{hname}.weight"], dequantize(g.data, g.tensor_type))
            g = t[f"blk.{blk}.attn_norm.weight"]
            cmp(f"blk.{blk}.attn_norm (F32) vs GGUF", sd[f"model.layers.{blk}.input_layernorm.weight"],
                dequantize(g.data, g.tensor_type))
        g = t["token_embd.weight"]
        cmp("token_embd (Q8_0) vs gguf.dequantize", sd["model.embed_tokens.weight"], dequantize(g.data, g.tensor_type))
        out["lm_head_tied"] = bool(model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr())
        out["q_k_permutation"] = ("HF q_proj/k_proj rows are the GGUF rows with llama.cpp's rope permutation undone "
                                  "(GGUF attn_q/attn_k use the interleaved-pair layout of llama.cpp's rope; HF uses "
                                  "rotate_half). Logits are the same either way.")
    else:
        for blk in (0, 5, 17):
            for gname, hname in (("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"),
                                 ("attn_v", "self_attn.v_proj"), ("attn_output", "self_attn.o_proj"),
                                 ("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"),
                                 ("ffn_down", "mlp.down_proj")):
                g = t[f"blk.{blk}.{gname}.weight"]
                cmp(f"blk.{blk}.{gname} ({g.tensor_type.name}) vs gguf.dequantize",
                    sd[f"model.layers.{blk}.{hname}.weight"], dequantize(g.data, g.tensor_type))
            for gname, hname in (("attn_norm", "input_layernorm"), ("post_attention_norm", "post_attention_layernorm"),
                                 ("ffn_norm", "pre_feedforward_layernorm"), ("post_ffw_norm", "post_feedforward_layernorm"),
                                 ("attn_q_norm", "self_attn.q_norm"), ("attn_k_norm", "self_attn.k_norm")):
                g = t[f"blk.{blk}.{gname}.weight"]
                gv = dequantize(g.data, g.tensor_type)
                hv = sd[f"model.layers.{blk}.{hname}.weight"]
                cmp(f"blk.{blk}.{gname} (F32): (HF weight + 1) vs GGUF value", (hv + 1.0).astype(np.float32), gv)
        g = t["output_norm.weight"]
        cmp("output_norm (F32): (HF weight + 1) vs GGUF value",
            (sd["model.norm.weight"] + 1.0).astype(np.float32), dequantize(g.data, g.tensor_type))
        g = t["token_embd.weight"]
        cmp("token_embd (Q8_0) vs gguf.dequantize", sd["model.embed_tokens.weight"], dequantize(g.data, g.tensor_type))
        out["lm_head_tied"] = bool(model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr())
        out["norm_offset"] = ("llama.cpp's converter stores Gemma norm weights as (w_hf + 1). transformers' GGUF loader "
                              "(Gemma2TensorProcessor, also used for gemma3) subtracts 1 from every tensor whose name "
                              "contains 'norm.weight' (attn_norm, post_attention_norm, ffn_norm, post_ffw_norm, "
                              "attn_q_norm, attn_k_norm, output_norm), and Gemma3RMSNorm multiplies by (1 + w): the "
                              "effective scale is the GGUF value (up to one float32 rounding in the -1/+1 round trip). "
                              "A GGUF runtime must multiply by the stored value directly, with no +1.")
        out["embed_scale"] = float(model.model.embed_tokens.embed_scale.float().item())
    out["checks"] = checks
    return out


def run_model(model_key: str, model_dir: Path, out_dir: Path, command: str):
    import torch
    import transformers
    import gguf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = MODELS[model_key]
    gguf_name = spec["gguf"]
    gguf_path = model_dir / gguf_name
    if not gguf_path.exists():
        sys.exit(f"{gguf_path} missing: run `bash tools/models.sh`")
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(model_dir), gguf_file=gguf_name)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), gguf_file=gguf_name, dtype=torch.float32,
                                                 **spec["kwargs"])
    model.eval()
    vocab = model.config.vocab_size
    assert model.lm_head.weight.shape[0] == vocab
    print(f"[{model_key}] loaded {type(model).__name__}, vocab {vocab}", flush=True)

    dq = dequant_check(model_key, model, gguf_path)
    worst = max(c["max_abs_diff"] for c in dq["checks"].values())
    print(f"[{model_key}] dequant check: worst max_abs_diff {worst:.3g}", flush=True)

    mdir = out_dir / Path(gguf_name).stem
    mdir.mkdir(parents=True, exist_ok=True)
    rows_f16 = []
    prompts_out = []
    row = 0
    for pr in prompts_for(model_key):
        chat = "messages" in pr
        if chat:
            text = tok.apply_chat_template(pr["messages"], tokenize=False, add_generation_prompt=True)
            enc = tok.apply_chat_template(pr["messages"], tokenize=True, add_generation_prompt=True)
            prompt_ids = list(enc["input_ids"] if hasattr(enc, "keys") else enc)
            assert prompt_ids == tok(text, add_special_tokens=False).input_ids, "chat template ids differ from text ids"
        else:
            text = pr["text"]
            prompt_ids = tok(text).input_ids  # special tokens as the tokenizer adds them (Gemma: BOS)
        P = len(prompt_ids)
        if pr["name"].startswith("long"):
            assert P >= 1000, (pr["name"], P)

        with torch.no_grad():
            # greedy, pure argmax, KV cache, EOS not special
            ids = torch.tensor([prompt_ids])
            out = model(input_ids=ids, use_cache=True)
            past = out.past_key_values
            cont = []
            step_logits = out.logits[0, -1]
            for step in range(N_NEW):
                nxt = int(torch.argmax(step_logits).item())
                cont.append(nxt)
                if step == N_NEW - 1:
                    break
                out = model(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
                past = out.past_key_values
                step_logits = out.logits[0, -1]
            del past, out
            # teacher-forced forward over prompt + continuation, no cache
            full = torch.tensor([prompt_ids + cont])
            lg = model(input_ids=full, use_cache=False, logits_to_keep=N_NEW + 1).logits[0].float().numpy()
        assert lg.shape == (N_NEW + 1, vocab)
        positions = list(range(P - 1, P + N_NEW))
        order = np.argsort(-lg, axis=1, kind="stable")[:, :TOPK]  # ties: lower id first
        top_logits = np.take_along_axis(lg, order, axis=1).astype(np.float32)
        gap = (top_logits[:, 0] - top_logits[:, 1]).astype(np.float32)
        tf_argmax = order[:, 0]
        matches = [bool(tf_argmax[i] == cont[i]) for i in range(N_NEW)]
        full_pos = [P - 1 + k for k in spec["full_rows_k"]]
        for k in spec["full_rows_k"]:
            rows_f16.append(lg[k].astype(np.float16))
        entry = {
            "name": pr["name"],
            "chat": chat,
            "text": text,
            "prompt_len": P,
            "prompt_ids": [int(x) for x in prompt_ids],
            "continuation_ids": [int(x) for x in cont],
            "continuation_text": tok.decode(cont),
            "topk_positions": positions,
            "topk_ids": [[int(x) for x in r] for r in order],
            "topk_logits": [[float(x) for x in r] for r in top_logits],
            "top1_top2_gap": [float(x) for x in gap],
            "teacher_forced_argmax_matches_greedy": sum(matches),
            "teacher_forced_argmax_mismatch_steps": [i for i, m in enumerate(matches) if not m],
            "full_positions": full_pos,
            "full_rows_offset": row,
        }
        if chat:
            entry["messages"] = pr["messages"]
        row += len(full_pos)
        prompts_out.append(entry)
        print(f"[{model_key}] {pr['name']}: P={P} tf/greedy agree {sum(matches)}/{N_NEW} "
              f"min gap {gap.min():.3g} :: {tok.decode(cont[:16])!r}", flush=True)

    logits_path = mdir / "logits.f16"
    np.stack(rows_f16).astype("<f2").tofile(logits_path)
    ref = {
        "format": "rocmforge-hf-reference-v1",
        "model": Path(gguf_name).stem,
        "gguf_file": gguf_name,
        "gguf_sha256": sha256_file(gguf_path.resolve()),
        "hf_class": type(model).__name__,
        "vocab_size": vocab,
        "n_new_tokens": N_NEW,
        "topk": TOPK,
        "logits_file": "logits.f16",
        "logits_dtype": "float16 little-endian, row-major [n_rows, vocab_size]",
        "n_full_rows": row,
        "greedy": "pure argmax over HF float32 logits at each step with KV cache (ties: lowest id); EOS is "
                  "neither suppressed nor a stop: always 64 tokens",
        "teacher_forced": "one forward over prompt_ids + continuation_ids without cache; topk_* rows are for "
                          "topk_positions = the last 65 positions (index into the whole sequence); the row at "
                          "position p predicts token p+1",
        "tokenizer": f"HF {type(tok).__name__} built by transformers from the GGUF tokenizer.* keys",
        "attn_implementation": model.config._attn_implementation,
        "config": {k: v for k, v in model.config.to_dict().items()
                   if k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                            "head_dim", "intermediate_size", "rms_norm_eps", "rope_parameters", "sliding_window",
                            "layer_types", "query_pre_attn_scalar", "tie_word_embeddings", "bos_token_id",
                            "eos_token_id", "final_logit_softcapping", "attn_logit_softcapping",
                            "hidden_act", "hidden_activation", "max_position_embeddings")},
        "dequantization": dq,
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__,
                     "gguf": getattr(gguf, "__version__", None) or _pkg_version("gguf"),
                     "numpy": np.__version__, "tokenizers": _pkg_version("tokenizers"),
                     "python": platform.python_version()},
        "torch_threads": torch.get_num_threads(),
        "command": command,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "prompts": prompts_out,
    }
    with open(mdir / "ref.json", "w") as f:
        json.dump(ref, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"[{model_key}] wrote {mdir}/ref.json and {logits_path} ({row} rows x {vocab})", flush=True)


# ---------------------------------------------------------------------------------------------
def _log_softmax(x):
    m = x.max(axis=-1, keepdims=True)
    return x - (m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))


def crosscheck_llama_cpp(model_dir: Path, out_dir: Path, tiny_dir: Path, out_file: Path, command: str):
    """Compare the committed HF references with llama.cpp on the CPU (llama-cpp-python, built from its sdist).
    Informative: it says how far a correct quantized GGUF runtime may land from HF's float32 logits."""
    import base64
    from importlib.metadata import version
    from llama_cpp import Llama
    res = {"what": "llama.cpp (llama-cpp-python, CPU, default settings: f16 KV cache, quantized activations in "
                   "quantized matmuls) vs the HF reference in this directory; same GGUF files",
           "llama_cpp_python": version("llama_cpp_python"), "command": command, "real": {}, "tiny": {}}
    for key in MODELS:
        mdir = out_dir / Path(MODELS[key]["gguf"]).stem
        r = json.loads((mdir / "ref.json").read_text())
        V = r["vocab_size"]
        full = np.fromfile(mdir / r["logits_file"], dtype="<f2").reshape(-1, V).astype(np.float32)
        llm = Llama(model_path=str(model_dir / r["gguf_file"]), n_ctx=2048, n_batch=2048, logits_all=True,
                    n_threads=os.cpu_count() or 2, verbose=False)
        rows = []
        for p in r["prompts"]:
            add_bos = (not p["chat"]) and p["prompt_ids"][0] == r["config"].get("bos_token_id")
            toks = llm.tokenize(p["text"].encode(), add_bos=add_bos, special=p["chat"])
            seq = p["prompt_ids"] + p["continuation_ids"]
            llm.reset()
            llm.eval(seq)
            sc = np.array(llm.scores[:len(seq)], dtype=np.float32)
            lc = sc[p["topk_positions"]]
            ref_top = np.array([t[0] for t in p["topk_ids"]])
            agree = lc.argmax(1) == ref_top
            d_top = max(float(np.abs(lc[i][p["topk_ids"][i]] - np.array(p["topk_logits"][i])).max())
                        for i in range(len(lc)))
            hf = full[p["full_rows_offset"]:p["full_rows_offset"] + len(p["full_positions"])]
            lf = sc[p["full_positions"]]
            d = lf - hf
            kl = (np.exp(_log_softmax(hf)) * (_log_softmax(hf) - _log_softmax(lf))).sum(1)
            rows.append({"name": p["name"], "tokenizer_ids_equal": toks == p["prompt_ids"],
                         "argmax_agree": int(agree.sum()), "positions": len(agree),
                         "disagree_at_hf_gap": [round(float(p["top1_top2_gap"][i]), 4) for i in np.where(~agree)[0]],
                         "max_abs_diff_top10": round(d_top, 4),
                         "max_abs_diff_full_rows": round(float(np.abs(d).max()), 4),
                         "max_abs_diff_full_rows_minus_row_mean": round(float(np.abs(d - d.mean(1, keepdims=True)).max()), 4),
                         "std_diff_full_rows": round(float(d.std(1).max()), 4),
                         "max_kl_hf_llama_full_rows": float(kl.max())})
            print(f"[xcheck] {key} {rows[-1]}", flush=True)
        res["real"][r["model"]] = rows
        del llm
    for arch in ("qwen2", "qwen3", "mistral"):
        r = json.loads((tiny_dir / f"{arch}.ref.json").read_text())
        llm = Llama(model_path=str(tiny_dir / r["gguf_file"]), n_ctx=128, logits_all=True, n_threads=2, verbose=False)
        rows = []
        for sq in r["sequences"]:
            ref = np.frombuffer(base64.b64decode(sq["logits_f32_b64"]), dtype="<f4").reshape(sq["logits_shape"])
            llm.reset()
            llm.eval(sq["ids"])
            sc = np.array(llm.scores[:len(sq["ids"])], dtype=np.float32)
            rows.append({"name": sq["name"], "max_abs_diff": float(np.abs(sc - ref).max()),
                         "max_abs_ref": float(np.abs(ref).max()), "argmax_equal": bool((sc.argmax(1) == ref.argmax(1)).all())})
        toks_ok = all(llm.tokenize(t["text"].encode(), add_bos=r["tokenizer"]["bos"] is not None, special=False) == t["ids"]
                      for t in r["tokenizer"]["samples"])
        res["tiny"][arch] = {"sequences": rows, "tokenizer_samples_equal": toks_ok}
        print(f"[xcheck] tiny {arch} {res['tiny'][arch]}", flush=True)
        del llm
    with open(out_file, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    print(f"wrote {out_file}")


def _pkg_version(name):
    from importlib.metadata import version, PackageNotFoundError
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="smollm2,gemma3")
    ap.add_argument("--model-dir", default=".model")
    ap.add_argument("--out", default="tests/data/hf")
    ap.add_argument("--crosscheck-llama-cpp", action="store_true",
                    help="instead: compare the committed references with llama-cpp-python (CPU) and write "
                         "<out>/llama_cpp_crosscheck.json")
    ap.add_argument("--tiny-dir", default="tests/data/tiny")
    a = ap.parse_args()
    command = "python tools/hf_reference.py " + " ".join(sys.argv[1:])
    if a.crosscheck_llama_cpp:
        crosscheck_llama_cpp(Path(a.model_dir), Path(a.out), Path(a.tiny_dir),
                             Path(a.out) / "llama_cpp_crosscheck.json", command.strip())
        return
    import torch
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    for key in a.models.split(","):
        run_model(key.strip(), Path(a.model_dir), Path(a.out), command.strip())


if __name__ == "__main__":
    main()
