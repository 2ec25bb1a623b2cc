#!/usr/bin/env python3
"""Reference data for tests/cpu_tokenizer.rs: HF tokenizers built from the two test GGUFs.

usage: python3 tools/make_tokenizer_refs.py [--model-dir .model] [--out tests/data/tokenizer]
needs: pip install "transformers>=4.45,<5" tokenizers sentencepiece protobuf gguf
       (optional, for the cross-check column: llama-cpp-python)

Writes smollm2.json and gemma3.json: for every corpus string the ids HF produces with
add_special_tokens=True (BOS as the GGUF's tokenizer.ggml.add_bos_token says), HF's decode of those
ids (with and without special tokens), and, for SmolLM2, apply_chat_template outputs.

How the HF tokenizers are built, and why not only `AutoTokenizer.from_pretrained(dir, gguf_file=...)`:
transformers' GGUF loader (checked with 4.57) builds these two vocabularies wrongly, so its output
is recorded per string as `hf_gguf_ids` for the record, and the reference `ids` come from HF built
the way the models' own tokenizer.json files are:
  * SmolLM2 (gpt2 vocab, pre "smollm"): the loader's BPE (vocab and merges from the GGUF) is kept;
    its pre-tokenizer is GPT-2's regex alone, but "smollm" (StarCoder's, SmolLM2's tokenizer.json)
    isolates every digit first: Split(\\p{N}, isolated) + ByteLevel is set. The loader also adds
    a BOS although tokenizer.ggml.add_bos_token is false, and names <|im_start|> as EOS (it reads
    eos_token from bos_token_id); BOS/EOS are added here as the GGUF flags say.
  * Gemma 3 (SentencePiece "llama" vocab with BPE scores): the loader builds a Unigram model over
    the scores, which splits "capital" into "c ap it al". The SentencePiece model is rebuilt from
    the GGUF arrays instead (pieces, scores, types; model_type BPE, byte_fallback, no dummy prefix,
    the user-defined whitespace pieces given back their "▁", which llama.cpp's converter had
    replaced by spaces), and HF's own GemmaConverter turns it into the fast tokenizer (a BPE whose
    merges come from the scores). CONTROL pieces are passed as special tokens, as Gemma's
    tokenizer_config.json declares them. The reference ids are HF's slow GemmaTokenizer's, which
    runs SentencePiece itself (the algorithm Gemma was trained with) after splitting out the special
    tokens; the converted fast tokenizer's ids are stored as `hf_fast_ids` where they differ (on
    whitespace runs: the fast BPE merges "▁▁" + "▁x" where SentencePiece takes the user-defined
    piece "▁▁▁" whole). Decodes are the fast tokenizer's decoder (Replace ▁, ByteFallback, Fuse).
When llama-cpp-python is installed, llama.cpp's tokenizer (the GGUF's own implementation, loaded
vocab-only) is run too; its ids and its detokenization of the reference ids are stored as
`llama_cpp_ids` / `llama_cpp_decode` where they differ, and `disagreements` counts them.
"""
import argparse
import json
import os
import sys
import tempfile

CORPUS = [
    "The capital of France is",
    "",
    "Hello, world!",
    " leading space",
    "  two leading spaces",
    "trailing space ",
    "multiple   spaces   between   words",
    "     ",
    "a",
    "tab\tseparated\tvalues\t\tdouble tab",
    "line one\nline two\n\nline four\n",
    "\n\n\n",
    "   \t  \n  mixed whitespace run \t\t\n ",
    "\r\nWindows line\r\nendings\r\n",
    "12345678901234567890",
    "3.14159 and 2,718,281 and 1e-10 and -42",
    "Year 2024: 365 days, 24h/day, 0x1F, 007",
    "I'm sure you're right; they'll see what we've done, won't they? I'd say it's OK.",
    "DON'T SHOUT, IT'S RUDE",
    "Ünïcödé àccénts: café, naïve, Zürich, São Paulo, Øresund, Łódź",
    "Русский текст: Привет, как дела?",
    "Ελληνικά: Καλημέρα κόσμε",
    "العربية: مرحبا بالعالم",
    "עברית: שלום עולם",
    "हिन्दी: नमस्ते दुनिया",
    "ภาษาไทย สวัสดีชาวโลก",
    "中文：你好，世界！今天天气很好。",
    "日本語：こんにちは世界、カタカナとひらがな。",
    "한국어: 안녕하세요 세계",
    "Emoji: 😀 🎉 👍🏽 🇫🇷 ❤️",
    "ZWJ: 👨‍👩‍👧‍👦 and 🏳️‍🌈 and 👩🏾‍💻 and 🧑‍🤝‍🧑",
    "Math: ∀x ∈ ℝ, x² ≥ 0; ∑ᵢ aᵢ = ∞ ≠ ∅",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "fn main() {\n\tlet v: Vec<u32> = (0..10).map(|x| x * x).collect();\n\tprintln!(\"{:?}\", v);\n}\n",
    '{"key": [1, 2.5, null, true], "nested": {"a": "b"}}',
    '<div class="x"><h1>Title</h1><table><tr><td>1</td></tr></table></div>',
    "https://example.com/path?query=1&x=%20#frag",
    "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
    "<start_of_turn>user\nHi!<end_of_turn>\n<start_of_turn>model\n",
    "<bos>text after bos text",
    "<|endoftext|>",
    "Mixed<|im_end|>special<eos>inline</s>tokens",
    "!!!???...,,,;;;---___***",
    "CamelCaseIdentifier snake_case_identifier kebab-case-id SCREAMING_CASE",
    "\u00a0non-breaking\u2009thin\u3000ideographic space",
    "Combining: e\u0301 vs \u00e9, A\u030a vs \u00c5",
    "Long words: pneumonoultramicroscopicsilicovolcanoconiosis supercalifragilisticexpialidocious",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "Quotes: “smart” ‘single’ «guillemets» „low“",
    "Control: \x01\x1f\x7f end",
    "The quick brown fox jumps over the lazy dog. Then it ran 3 miles (about 4.8 km) in 17 minutes, "
    "which—according to the judges—was a record!",
]

CONVERSATIONS = [
    ([{"role": "system", "content": "You are a terse assistant."},
      {"role": "user", "content": "What is the capital of France?"}], True),
    ([{"role": "user", "content": "Hello!"}], True),
    ([{"role": "user", "content": "Hello!"}], False),
    ([{"role": "system", "content": "Answer in French."},
      {"role": "user", "content": "Hi"},
      {"role": "assistant", "content": "Bonjour !"},
      {"role": "user", "content": "How are you?\nTell me.  Really."}], True),
    ([{"role": "system", "content": "Answer in French."},
      {"role": "user", "content": "Hi"},
      {"role": "assistant", "content": "Bonjour !"},
      {"role": "user", "content": "How are you?"},
      {"role": "assistant", "content": "Très bien, merci. 😀"}], False),
    ([{"role": "user", "content": "Write code:\n```py\nprint('x')\n```"},
      {"role": "assistant", "content": ""}], False),
]


def gguf_tokenizer_fields(path):
    from gguf import GGUFReader
    r = GGUFReader(path)
    out = {}
    for k, f in r.fields.items():
        if k.startswith("tokenizer."):
            out[k] = f.contents()
    return out


def allow_gguf_without_torch():
    # transformers refuses GGUF files without torch, though reading the tokenizer needs none.
    import transformers.modeling_gguf_pytorch_utils as m
    m.is_torch_available = lambda: True


def with_special(ids, meta, default_bos):
    out = list(ids)
    if meta.get("tokenizer.ggml.add_bos_token", default_bos):
        out = [meta["tokenizer.ggml.bos_token_id"]] + out
    if meta.get("tokenizer.ggml.add_eos_token", False):
        out = out + [meta["tokenizer.ggml.eos_token_id"]]
    return out


def llama_cpp(path):
    try:
        from llama_cpp import Llama
    except ImportError:
        print("  llama-cpp-python not installed: no llama.cpp cross-check", file=sys.stderr)
        return None
    llm = Llama(model_path=path, vocab_only=True, verbose=False)
    return (lambda text: llm.tokenize(text.encode("utf-8"), add_bos=True, special=True),
            lambda ids: llm.detokenize(ids, special=True).decode("utf-8", errors="replace"))


def smollm2(path):
    from tokenizers import Regex, decoders, pre_tokenizers
    from transformers import AutoTokenizer
    meta = gguf_tokenizer_fields(path)
    assert meta["tokenizer.ggml.pre"] == "smollm", meta["tokenizer.ggml.pre"]
    hf_gguf = AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))
    tok = AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))
    back = tok.backend_tokenizer
    back.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\p{N}"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    back.decoder = decoders.ByteLevel()

    def encode(text):
        return with_special(back.encode(text, add_special_tokens=False).ids, meta, False)

    chats = []
    for messages, gen in CONVERSATIONS:
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
        chats.append({"messages": messages, "add_generation_prompt": gen, "text": text})
    return meta, encode, back, (lambda t: hf_gguf(t).input_ids), chats, {
        "reference": "transformers GGUF loader's BPE (vocab+merges from the GGUF) with the smollm "
                     "pre-tokenizer (\\p{N} isolated, then byte-level GPT-2 regex) and ByteLevel decoder; "
                     "BOS/EOS per tokenizer.ggml.add_bos_token/add_eos_token",
    }


def gemma3(path):
    from sentencepiece import sentencepiece_model_pb2 as pb
    from transformers import AutoTokenizer, GemmaTokenizer, GemmaTokenizerFast
    meta = gguf_tokenizer_fields(path)
    assert meta["tokenizer.ggml.model"] == "llama"
    tokens = meta["tokenizer.ggml.tokens"]
    scores = meta["tokenizer.ggml.scores"]
    types = meta["tokenizer.ggml.token_type"]
    proto = pb.ModelProto()
    for piece, score, ty in zip(tokens, scores, types):
        p = proto.pieces.add()
        # llama.cpp's converter stores user-defined pieces with "▁" turned into spaces; give it back.
        p.piece = piece.replace(" ", "\u2581") if ty == 4 else piece
        p.score = score
        p.type = ty
    ts = proto.trainer_spec
    ts.model_type = pb.TrainerSpec.BPE
    ts.byte_fallback = True
    ts.vocab_size = len(tokens)
    ts.unk_id = meta["tokenizer.ggml.unknown_token_id"]
    ts.bos_id = meta["tokenizer.ggml.bos_token_id"]
    ts.eos_id = meta["tokenizer.ggml.eos_token_id"]
    ts.pad_id = meta.get("tokenizer.ggml.padding_token_id", -1)
    ts.unk_piece = tokens[ts.unk_id]
    ts.bos_piece = tokens[ts.bos_id]
    ts.eos_piece = tokens[ts.eos_id]
    ts.pad_piece = tokens[ts.pad_id]
    ns = proto.normalizer_spec
    ns.name = "identity"
    ns.add_dummy_prefix = bool(meta.get("tokenizer.ggml.add_space_prefix", True))
    ns.remove_extra_whitespaces = False
    ns.escape_whitespaces = True
    control = [t for t, ty in zip(tokens, types) if ty == 3]
    tmp = tempfile.mkdtemp()
    model_file = os.path.join(tmp, "tokenizer.model")
    with open(model_file, "wb") as f:
        f.write(proto.SerializeToString())
    kw = dict(bos_token=tokens[ts.bos_id], eos_token=tokens[ts.eos_id], unk_token=tokens[ts.unk_id],
              pad_token=tokens[ts.pad_id], additional_special_tokens=control, add_bos_token=True)
    fast = GemmaTokenizerFast(vocab_file=model_file, from_slow=True, **kw)
    slow = GemmaTokenizer(vocab_file=model_file, **kw)
    back = fast.backend_tokenizer
    hf_gguf = AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))

    def encode(text):
        return with_special(back.encode(text, add_special_tokens=False).ids, meta, True)

    def encode_slow(text):
        return with_special(slow.encode(text, add_special_tokens=False), meta, True)

    return meta, encode_slow, back, (lambda t: hf_gguf(t).input_ids), [], {
        "reference": "HF slow GemmaTokenizer (SentencePiece) over the SentencePiece model rebuilt from "
                     "the GGUF (BPE, byte_fallback, no dummy prefix), CONTROL pieces as special tokens; "
                     "BOS per tokenizer.ggml.add_bos_token; decode by HF GemmaConverter's fast tokenizer",
        "other_encoders": {"hf_fast": encode},
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", default=os.environ.get("ROCMFORGE_MODEL_DIR", ".model"))
    ap.add_argument("--out", default="tests/data/tokenizer")
    args = ap.parse_args()
    import tokenizers
    import transformers
    allow_gguf_without_torch()
    os.makedirs(args.out, exist_ok=True)
    for name, fname, build in [("smollm2", "smollm2-135m-instruct-q4_1.gguf", smollm2),
                               ("gemma3", "gemma-3-270m-q4_k_m.gguf", gemma3)]:
        path = os.path.join(args.model_dir, fname)
        print(f"{name}: {path}", file=sys.stderr)
        meta, encode, back, hf_gguf_encode, chats, info = build(path)
        other_encoders = info.pop("other_encoders", {})
        lcpp = llama_cpp(path)
        cases = []
        disagree = {"hf_gguf": 0, "llama_cpp": 0, "llama_cpp_decode": 0,
                    **{k: 0 for k in other_encoders}}
        for text in CORPUS:
            ids = encode(text)
            case = {
                "text": text,
                "ids": ids,
                "decode": back.decode(ids, skip_special_tokens=False),
                "decode_skip_special": back.decode(ids, skip_special_tokens=True),
            }
            others = {"hf_gguf": hf_gguf_encode(text)}
            for k, enc in other_encoders.items():
                others[k] = enc(text)
            if lcpp:
                others["llama_cpp"] = lcpp[0](text)
                dec = lcpp[1](ids)
                if dec != case["decode"]:
                    case["llama_cpp_decode"] = dec
                    disagree["llama_cpp_decode"] += 1
            for k, v in others.items():
                if list(v) != ids:
                    case[f"{k}_ids"] = list(v)
                    disagree[k] += 1
            cases.append(case)
        doc = {
            "model": fname,
            "generator": {
                "script": "tools/make_tokenizer_refs.py",
                "transformers": transformers.__version__,
                "tokenizers": tokenizers.__version__,
                **info,
            },
            "bos_included": bool(meta.get("tokenizer.ggml.add_bos_token", name == "gemma3")),
            "eos_included": bool(meta.get("tokenizer.ggml.add_eos_token", False)),
            "disagreements": {k: v for k, v in disagree.items()
                              if not k.startswith("llama_cpp") or lcpp},
            "cases": cases,
            "chat": chats,
        }
        out = os.path.join(args.out, f"{name}.json")
        with open(out, "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=1)
            f.write("\n")
        print(f"  wrote {out}: {len(cases)} strings, {len(chats)} chats; strings where others differ: "
              f"{doc['disagreements']}", file=sys.stderr)


if __name__ == "__main__":
    main()
