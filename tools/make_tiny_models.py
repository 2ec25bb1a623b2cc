#!/usr/bin/env python3
"""Tiny random-weight qwen2 / qwen3 / mistral models, converted to GGUF by llama.cpp, with HF reference logits.

Usage (CPU only; needs torch, transformers, tokenizers, safetensors, numpy, sentencepiece):
    python tools/make_tiny_models.py [--llama-src /work/shared/peers/llama.cpp-0c1e570-src.tar.gz]
                                     [--out tests/data/tiny] [--arch qwen2,qwen3,mistral] [--keep-hf DIR]

Each model: hidden 128, 2 layers, 2 query heads, 1 KV head, head_dim 64, intermediate 256, rope theta 10000,
float32 weights from a fixed seed (linear weights ~N(0, 1/fan_in), embeddings ~N(0, 0.5^2), RMSNorm weights
1 + N(0, 0.2^2) so a runtime that ignores a norm weight fails, qwen2 q/k/v biases ~N(0, 0.5^2)), a tiny
byte-level BPE tokenizer trained here with the `tokenizers` package on the fixed text below.
  qwen2:   Qwen2ForCausalLM, q/k/v bias, untied lm_head
  qwen3:   Qwen3ForCausalLM, q_norm/k_norm, tied lm_head
  mistral: MistralForCausalLM, no sliding window, untied lm_head, BOS added by the tokenizer
The HF model is saved to a temp dir and converted with llama.cpp's convert_hf_to_gguf.py (--outtype f32),
run from the extracted source tarball with its own gguf-py. llama.cpp's converter identifies a BPE
pre-tokenizer by hashing the token ids of a fixed test string, so a freshly trained vocabulary is never
recognised. This script therefore builds the tokenizer with exactly the pre-tokenizer of a model llama.cpp
knows (its Split regex is checked against the regex quoted in llama.cpp's src/llama-vocab.cpp) and, in the
converter process only, replaces get_vocab_base_pre() by a function that returns that known name
("qwen2" for qwen2/qwen3, "llama-bpe" for mistral). Nothing else of the converter is changed.
Outputs: <out>/<arch>.gguf, <out>/<arch>.ref.json (format in tests/data/README.md).
"""
import argparse
import base64
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

TRAIN_TEXT = """\
The river runs past the old mill, and the miller counts the sacks of grain every morning. In spring the water
is high and cold; in autumn it is low and the wheel turns slowly. Children walk along the bank to school.

A compiler reads source code, builds a tree, and writes machine instructions. It checks the types, removes
dead code, and keeps the registers busy. When the tests pass, the engineers ship the new version on Friday.

Bread needs flour, water, salt and yeast. Knead the dough for ten minutes, let it rise for an hour, then bake
it at 230 degrees. The crust should be brown and the inside soft. Serve it with butter and honey.

The planets move around the sun in ellipses. Mercury is the fastest, Neptune the slowest. On a clear night you
can see Jupiter and its four bright moons with a small telescope, and Saturn's rings look like a thin line.

def add(a, b):
    return a + b

for i in range(10):
    print(i, add(i, 2) * 3)

Question: What is 12 plus 30? Answer: 42. Question: Who wrote the letters? Answer: The keeper of the tower.
"""

# Pre-tokenizer regexes as in the models' tokenizer.json files; llama.cpp quotes the same strings in
# src/llama-vocab.cpp ("original regex from tokenizer.json") for the pre types named here.
REGEX_QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
               r"\s*[\r\n]+|\s+(?!\S)|\s+")
REGEX_LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
INST = ("{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + "
        "message['content'] + ' [/INST]' }}{% else %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}")

ARCHS = {
    "qwen2": dict(seed=1002, pre="qwen2", regex=REGEX_QWEN2, llama_case="LLAMA_VOCAB_PRE_TYPE_QWEN2",
                  specials=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], bos=None, eos="<|im_end|>",
                  pad="<|endoftext|>", ignore_merges=False, chat_template=CHATML, tie=False),
    "qwen3": dict(seed=1003, pre="qwen2", regex=REGEX_QWEN2, llama_case="LLAMA_VOCAB_PRE_TYPE_QWEN2",
                  specials=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], bos=None, eos="<|im_end|>",
                  pad="<|endoftext|>", ignore_merges=False, chat_template=CHATML, tie=True),
    "mistral": dict(seed=1004, pre="llama-bpe", regex=REGEX_LLAMA3, llama_case="LLAMA_VOCAB_PRE_TYPE_LLAMA3",
                    specials=["<unk>", "<s>", "</s>"], bos="<s>", eos="</s>", pad=None,
                    ignore_merges=True,  # as Llama 3's tokenizer.json, and as llama.cpp does for llama-bpe
                    chat_template=INST, tie=False),
}
VOCAB_SIZE = 384
SEQS = {  # fixed token-id sequences (lengths 1, 7, 40); ids are taken modulo the vocabulary size
    "len1": [17],
    "len7": [3, 100, 250, 7, 42, 300, 11],
    "len40": [(37 * i + 5) % 383 for i in range(40)],
}
TOKENIZER_SAMPLES = ["Hello world!", "The river runs past the old mill.",
                     "def add(a, b):\n    return a + b\n", "12345 apples  and\t3 pears"]

# Converter driver: runs inside the llama.cpp source tree's environment.
DRIVER = r'''
import sys
src, model_dir, outfile, pre, name = sys.argv[1:6]
sys.path.insert(0, src)
import convert_hf_to_gguf as conv
from conversion.base import TextModel

def known_pre(self, tokenizer):
    # The tokenizer was built with exactly this llama.cpp pre-tokenizer (checked by make_tiny_models.py);
    # its vocabulary is new, so the id-hash in get_vocab_base_pre() cannot recognise it.
    return pre

TextModel.get_vocab_base_pre = known_pre
sys.argv = ["convert_hf_to_gguf.py", model_dir, "--outtype", "f32", "--outfile", outfile, "--model-name", name]
conv.main()
'''


def c_escaped(regex: str) -> str:
    return regex.replace("\\", "\\\\")


def build_tokenizer(arch: str, spec: dict, work: Path):
    from tokenizers import Tokenizer, Regex, models, pre_tokenizers, decoders, trainers, processors
    tk = Tokenizer(models.BPE(ignore_merges=spec["ignore_merges"]))
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(spec["regex"]), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, min_frequency=2, special_tokens=spec["specials"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tk.train_from_iterator([TRAIN_TEXT], trainer=trainer)
    if spec["bos"]:
        bos_id = tk.token_to_id(spec["bos"])
        tk.post_processor = processors.TemplateProcessing(
            single=f"{spec['bos']} $A", pair=f"{spec['bos']} $A {spec['bos']} $B",
            special_tokens=[(spec["bos"], bos_id)])
    else:
        tk.post_processor = processors.ByteLevel(trim_offsets=False)
    from transformers import PreTrainedTokenizerFast
    kw = {"eos_token": spec["eos"]}
    if spec["bos"]:
        kw["bos_token"] = spec["bos"]
    if spec["pad"]:
        kw["pad_token"] = spec["pad"]
    if "<unk>" in spec["specials"]:
        kw["unk_token"] = "<unk>"
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tk, **kw)
    hf_tok.chat_template = spec["chat_template"]
    return hf_tok, tk


def check_tokenizer_json(tok_dir: Path, spec: dict, llama_src: Path):
    """The saved pre-tokenizer is exactly the known one; llama.cpp quotes the same regex for that pre type."""
    tj = json.loads((tok_dir / "tokenizer.json").read_text())
    pt = tj["pre_tokenizer"]
    assert pt["type"] == "Sequence", pt
    split, bl = pt["pretokenizers"]
    assert split["type"] == "Split" and split["pattern"] == {"Regex": spec["regex"]}, split
    assert split["behavior"] == "Isolated" and split["invert"] is False, split
    assert bl["type"] == "ByteLevel" and bl["add_prefix_space"] is False and bl["use_regex"] is False, bl
    assert tj["model"]["type"] == "BPE" and tj["model"]["byte_fallback"] is False
    assert tj["model"]["ignore_merges"] == spec["ignore_merges"]
    vocab_cpp = (llama_src / "src" / "llama-vocab.cpp").read_text()
    case = vocab_cpp.index(f"case {spec['llama_case']}:")
    block = vocab_cpp[case:case + 1500]
    assert c_escaped(spec["regex"]) in block, f"regex not quoted under {spec['llama_case']} in llama-vocab.cpp"
    assert f'tokenizer_pre == "{spec["pre"]}"' in vocab_cpp
    return {"pre_tokenizer": pt, "bpe_ignore_merges": spec["ignore_merges"]}


def init_weights(model, seed: int):
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            if name.endswith("norm.weight"):  # input/post_attention layernorm, final norm, q_norm/k_norm
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) / np.sqrt(p.shape[1]))
            else:
                raise RuntimeError(f"unexpected parameter {name}")


def make_config(arch: str, spec: dict, tok):
    from transformers import Qwen2Config, Qwen3Config, MistralConfig
    common = dict(vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                  num_attention_heads=2, num_key_value_heads=1, head_dim=64, max_position_embeddings=2048,
                  rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                  tie_word_embeddings=spec["tie"], hidden_act="silu", use_cache=True,
                  eos_token_id=tok.convert_tokens_to_ids(spec["eos"]),
                  bos_token_id=tok.convert_tokens_to_ids(spec["bos"]) if spec["bos"] else None,
                  pad_token_id=tok.convert_tokens_to_ids(spec["pad"]) if spec["pad"] else None)
    if arch == "qwen2":
        return Qwen2Config(rms_norm_eps=1e-6, use_sliding_window=False, sliding_window=None, **common)
    if arch == "qwen3":
        return Qwen3Config(rms_norm_eps=1e-6, attention_bias=False, use_sliding_window=False,
                           sliding_window=None, **common)
    return MistralConfig(rms_norm_eps=1e-5, sliding_window=None, **common)


def llama_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def describe_gguf(path: Path, model, arch: str):
    """GGUF keys, tensors, and a check that every tensor equals the HF weight it came from."""
    from gguf import GGUFReader, GGUFValueType
    r = GGUFReader(str(path))
    keys = {}
    for k, f in r.fields.items():
        if k.startswith("GGUF."):
            continue
        if f.types and f.types[0] == GGUFValueType.ARRAY:
            keys[k] = f"array[{f.types[-1].name}; {len(f.data)}]"
        else:
            v = f.contents()
            keys[k] = v if not isinstance(v, str) or len(v) < 200 else v[:60] + "..."
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    cfg = model.config
    hf_name = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
               "output.weight": "lm_head.weight"}
    per_blk = {"attn_norm.weight": "input_layernorm.weight", "ffn_norm.weight": "post_attention_layernorm.weight",
               "attn_q.weight": "self_attn.q_proj.weight", "attn_k.weight": "self_attn.k_proj.weight",
               "attn_v.weight": "self_attn.v_proj.weight", "attn_output.weight": "self_attn.o_proj.weight",
               "attn_q.bias": "self_attn.q_proj.bias", "attn_k.bias": "self_attn.k_proj.bias",
               "attn_v.bias": "self_attn.v_proj.bias", "attn_q_norm.weight": "self_attn.q_norm.weight",
               "attn_k_norm.weight": "self_attn.k_norm.weight", "ffn_gate.weight": "mlp.gate_proj.weight",
               "ffn_up.weight": "mlp.up_proj.weight", "ffn_down.weight": "mlp.down_proj.weight"}
    tensors, permuted = [], []
    for t in r.tensors:
        if t.name.startswith("blk."):
            _, b, rest = t.name.split(".", 2)
            hn = f"model.layers.{b}.{per_blk[rest]}"
        else:
            hn = hf_name[t.name]
        hv = sd[hn]
        gv = np.asarray(t.data).reshape(hv.shape)
        if r.fields["general.architecture"].contents() == "llama" and (".attn_q." in t.name or ".attn_k." in t.name):
            nh = cfg.num_attention_heads if ".attn_q." in t.name else cfg.num_key_value_heads
            hv = llama_permute(hv, nh)
            permuted.append(t.name)
        assert np.array_equal(hv, gv), f"{t.name} differs from {hn}"
        tensors.append({"name": t.name, "type": t.tensor_type.name, "ggml_shape": [int(d) for d in t.shape],
                        "hf": hn})
    return keys, tensors, permuted


def b64_f32(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode("ascii")


def run_arch(arch: str, llama_src: Path, out_dir: Path, keep_hf, command: str):
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer
    spec = ARCHS[arch]
    work = Path(tempfile.mkdtemp(prefix=f"tiny-{arch}-"))
    hf_dir = Path(keep_hf) / arch if keep_hf else work / "hf"
    if hf_dir.exists():
        shutil.rmtree(hf_dir)
    hf_dir.mkdir(parents=True)

    tok, _ = build_tokenizer(arch, spec, work)
    tok.save_pretrained(hf_dir)
    tok_check = check_tokenizer_json(hf_dir, spec, llama_src)

    torch.manual_seed(spec["seed"])
    cfg = make_config(arch, spec, tok)
    cfg._attn_implementation = "eager"
    cls = {"qwen2": transformers.Qwen2ForCausalLM, "qwen3": transformers.Qwen3ForCausalLM,
           "mistral": transformers.MistralForCausalLM}[arch]
    model = cls(cfg).float()
    init_weights(model, spec["seed"])
    if spec["tie"]:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    model.eval()
    model.save_pretrained(hf_dir, safe_serialization=True)

    # Reload from disk, as the converter sees it, and compute the reference from the reloaded model.
    tok2 = AutoTokenizer.from_pretrained(hf_dir)
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32, attn_implementation="eager").eval()
    vocab = model.config.vocab_size

    gguf_path = out_dir / f"{arch}.gguf"
    # the converter puts its own gguf-py first on sys.path (unless NO_LOCAL_GGUF is set)
    env = {k: v for k, v in os.environ.items() if k != "NO_LOCAL_GGUF"}
    env["PYTHONPATH"] = str(llama_src)
    drv = work / "convert_driver.py"
    drv.write_text(DRIVER)
    res = subprocess.run([sys.executable, str(drv), str(llama_src), str(hf_dir), str(gguf_path), spec["pre"],
                          f"tiny-{arch}"],
                         env=env, capture_output=True, text=True)
    (work / "convert.log").write_text(res.stdout + res.stderr)
    if res.returncode != 0:
        sys.exit(f"convert_hf_to_gguf failed for {arch}:\n{res.stderr[-4000:]}")
    size = gguf_path.stat().st_size
    assert size < 2 * 1024 * 1024, f"{gguf_path} is {size} bytes"

    keys, tensors, permuted = describe_gguf(gguf_path, model, arch)

    seqs = []
    with torch.no_grad():
        for name, ids in SEQS.items():
            ids = [i % vocab for i in ids]
            lg = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float().numpy()
            assert lg.shape == (len(ids), vocab)
            seqs.append({"name": name, "ids": ids, "logits_shape": list(lg.shape),
                         "logits_f32_b64": b64_f32(lg), "argmax": [int(x) for x in lg.argmax(axis=1)],
                         "logits_first8_pos0": [float(x) for x in lg[0, :8]]})
    samples = [{"text": s, "ids": tok2(s).input_ids} for s in TOKENIZER_SAMPLES]

    ref = {
        "format": "rocmforge-tiny-reference-v1",
        "arch": arch,
        "hf_class": type(model).__name__,
        "gguf_file": gguf_path.name,
        "gguf_size_bytes": size,
        "gguf_architecture": keys["general.architecture"],
        "gguf_keys": keys,
        "gguf_tensors": tensors,
        "gguf_qk_rows_permuted": permuted,
        "gguf_tensor_check": "every GGUF tensor is bit-equal to its HF float32 weight (attn_q/attn_k of "
                             "'llama' GGUFs after llama.cpp's rope row permutation)",
        "logits_encoding": "logits_f32_b64: base64 of little-endian float32, row-major [len(ids), vocab_size]; "
                           "row p is the HF logits at position p (predicting token p+1)",
        "config": {k: v for k, v in model.config.to_dict().items()
                   if k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                            "num_attention_heads", "num_key_value_heads", "head_dim", "rms_norm_eps",
                            "rope_parameters", "tie_word_embeddings", "attention_bias", "sliding_window",
                            "use_sliding_window", "bos_token_id", "eos_token_id", "pad_token_id",
                            "max_position_embeddings", "hidden_act")},
        "seed": spec["seed"],
        "init": "linear weights N(0,1/fan_in); embeddings N(0,0.25); every RMSNorm weight 1+N(0,0.04); "
                "biases N(0,0.25); torch.Generator seeded with `seed`, parameters in name order",
        "tokenizer": {"type": "byte-level BPE trained with the tokenizers package (make_tiny_models.py TRAIN_TEXT)",
                      "vocab_size": len(tok2), "special_tokens": spec["specials"], "bos": spec["bos"],
                      "eos": spec["eos"], "llama_cpp_pre": spec["pre"],
                      "pre_name_note": "tokenizer.ggml.pre set by the driver to the llama.cpp pre type whose "
                                       "regex the tokenizer uses (the converter's id-hash cannot know a new vocab)",
                      **tok_check, "samples": samples},
        "sequences": seqs,
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__,
                     "tokenizers": _pkg_version("tokenizers"), "numpy": np.__version__,
                     "llama.cpp": llama_src_label(llama_src), "python": platform.python_version()},
        "command": command,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    # Round trip: transformers reading the GGUF gives the same logits (checks the converter's metadata too).
    try:
        extra = {}
        if arch == "qwen3":
            # transformers' GGUF config map for qwen3 lacks attention.key_length -> head_dim (it would use
            # Qwen3Config's default 128); pass the GGUF's value explicitly.
            extra["head_dim"] = int(keys["qwen3.attention.key_length"])
            ref["hf_reload_note"] = ("transformers " + transformers.__version__ + " ignores qwen3.attention.key_length "
                                     "when loading a qwen3 GGUF; reloaded with head_dim=" + str(extra["head_dim"]))
        m2 = AutoModelForCausalLM.from_pretrained(str(out_dir), gguf_file=gguf_path.name, dtype=torch.float32,
                                                  attn_implementation="eager", **extra).eval()
        with torch.no_grad():
            ids = torch.tensor([SEQS["len40"]]) % vocab
            d = (m2(input_ids=ids).logits - model(input_ids=ids).logits).abs().max().item()
        ref["hf_reload_from_gguf_max_abs_diff_len40"] = d
    except Exception as e:  # informative only
        ref["hf_reload_from_gguf_max_abs_diff_len40"] = f"not loadable by transformers: {type(e).__name__}: {e}"
    with open(out_dir / f"{arch}.ref.json", "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    print(f"[{arch}] {gguf_path} {size} bytes, general.architecture={keys['general.architecture']}, "
          f"vocab {vocab}, reload diff {ref['hf_reload_from_gguf_max_abs_diff_len40']}", flush=True)
    if not keep_hf:
        shutil.rmtree(work, ignore_errors=True)


def llama_src_label(p: Path) -> str:
    return os.environ.get("TINY_LLAMA_LABEL", "llama.cpp-0c1e570 (llama-cpp-python 0.3.36 sdist)")


def _pkg_version(name):
    from importlib.metadata import version, PackageNotFoundError
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def extract_llama(src: str) -> Path:
    p = Path(src)
    if p.is_dir():
        return p
    d = Path(tempfile.mkdtemp(prefix="llamacpp-src-"))
    with tarfile.open(p) as tf:
        tf.extractall(d, filter="data")
    cands = [c.parent for c in d.rglob("convert_hf_to_gguf.py")]
    assert len(cands) == 1, cands
    return cands[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-src", default="/work/shared/peers/llama.cpp-0c1e570-src.tar.gz",
                    help="llama.cpp source tarball or extracted directory")
    ap.add_argument("--out", default="tests/data/tiny")
    ap.add_argument("--arch", default="qwen2,qwen3,mistral")
    ap.add_argument("--keep-hf", default=None, help="keep the HF model dirs under this directory")
    a = ap.parse_args()
    command = ("python tools/make_tiny_models.py " + " ".join(sys.argv[1:])).strip()
    import torch
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    llama_src = extract_llama(a.llama_src)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for arch in a.arch.split(","):
        run_arch(arch.strip(), llama_src, out, a.keep_hf, command)


if __name__ == "__main__":
    main()
