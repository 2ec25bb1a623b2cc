//! Tokenizer, streaming decoder and chat templates against reference data from HF
//! (tests/data/tokenizer/{smollm2,gemma3}.json, written by tools/make_tokenizer_refs.py) on the two
//! real models under `.model/` (`bash tools/models.sh`; env ROCMFORGE_MODEL_DIR overrides the
//! folder), plus malformed vocabularies built here, which must give errors, never panics.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rocmforge::gguf::{GgufFile, GgufWriter, Value, ValueType};
use rocmforge::model::chat::{no_template_error, ChatMessage, ChatTemplate};
use rocmforge::model::tokenizer::{StreamDecoder, Tokenizer};

struct Model {
    name: &'static str,
    tok: Tokenizer,
    tmpl: Option<ChatTemplate>,
    build: Duration,
    /// CPU time of the calling thread in `from_gguf` (load-independent; helper threads not counted).
    build_cpu: Duration,
    refs: serde_json::Value,
}

fn model_dir() -> PathBuf {
    std::env::var_os("ROCMFORGE_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".model"))
}

fn load(name: &'static str, file: &str) -> Model {
    let path = model_dir().join(file);
    assert!(
        path.exists(),
        "{} is missing: run `bash tools/models.sh` (or set ROCMFORGE_MODEL_DIR)",
        path.display()
    );
    let g = GgufFile::open(&path).unwrap();
    let (t, c) = (Instant::now(), thread_cpu());
    let tok = Tokenizer::from_gguf(&g).unwrap();
    let (build, build_cpu) = (t.elapsed(), thread_cpu() - c);
    let tmpl = ChatTemplate::from_gguf(&g).unwrap();
    let refs_path = format!("tests/data/tokenizer/{name}.json");
    let text = std::fs::read_to_string(&refs_path).unwrap_or_else(|e| panic!("{refs_path}: {e}"));
    let refs: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        refs["model"].as_str(),
        Some(file),
        "{refs_path} is for another model"
    );
    eprintln!(
        "{name}: Tokenizer::from_gguf took {build:?} ({build_cpu:?} CPU on the calling thread)"
    );
    Model {
        name,
        tok,
        tmpl,
        build,
        build_cpu,
        refs,
    }
}

fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn smollm2() -> &'static Model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| load("smollm2", "smollm2-135m-instruct-q4_1.gguf"))
}

fn gemma3() -> &'static Model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| load("gemma3", "gemma-3-270m-q4_k_m.gguf"))
}

fn models() -> [&'static Model; 2] {
    [smollm2(), gemma3()]
}

struct Case {
    text: String,
    ids: Vec<u32>,
    decode: String,
    decode_skip: String,
}

fn cases(m: &Model) -> Vec<Case> {
    let cs = m.refs["cases"].as_array().unwrap();
    assert!(
        cs.len() >= 40,
        "{}: only {} reference strings",
        m.name,
        cs.len()
    );
    cs.iter()
        .map(|c| Case {
            text: c["text"].as_str().unwrap().to_owned(),
            ids: c["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect(),
            decode: c["decode"].as_str().unwrap().to_owned(),
            decode_skip: c["decode_skip_special"].as_str().unwrap().to_owned(),
        })
        .collect()
}

#[test]
fn ids_match_hf() {
    for m in models() {
        let bos = m.refs["bos_included"].as_bool().unwrap();
        let mut bad = Vec::new();
        for c in cases(m) {
            let got = m.tok.encode(&c.text, true).unwrap();
            if got != c.ids {
                bad.push(format!(
                    "{:?}\n   got  {got:?}\n   want {:?}",
                    c.text, c.ids
                ));
            }
            // Without add_special: the same ids less BOS.
            let plain = m.tok.encode(&c.text, false).unwrap();
            let body = if bos { &c.ids[1..] } else { &c.ids[..] };
            assert_eq!(
                plain, body,
                "{}: {:?} without special tokens",
                m.name, c.text
            );
        }
        assert!(
            bad.is_empty(),
            "{}: {} mismatches:\n{}",
            m.name,
            bad.len(),
            bad.join("\n")
        );
    }
}

#[test]
fn bos_as_the_gguf_says() {
    let s = smollm2();
    assert_eq!(
        s.tok.encode("Hi", true).unwrap(),
        s.tok.encode("Hi", false).unwrap()
    );
    assert_eq!(s.tok.encode("", true).unwrap(), Vec::<u32>::new());
    let g = gemma3();
    assert_eq!(g.tok.encode("", true).unwrap(), vec![2]);
    assert_eq!(g.tok.encode("", false).unwrap(), Vec::<u32>::new());
}

#[test]
fn decode_matches_hf() {
    for m in models() {
        for c in cases(m) {
            assert_eq!(
                m.tok.decode(&c.ids, false).unwrap(),
                c.decode,
                "{}: {:?}",
                m.name,
                c.text
            );
            assert_eq!(
                m.tok.decode(&c.ids, true).unwrap(),
                c.decode_skip,
                "{}: {:?} (skip special)",
                m.name,
                c.text
            );
        }
    }
}

fn stream(tok: &Tokenizer, ids: &[u32], skip: bool) -> (String, Vec<String>) {
    let mut d = StreamDecoder::new(tok, skip);
    let mut parts: Vec<String> = ids.iter().map(|&id| d.push(id).unwrap()).collect();
    parts.push(d.finish());
    (parts.concat(), parts)
}

#[test]
fn stream_equals_decode() {
    for m in models() {
        for c in cases(m) {
            for skip in [false, true] {
                let (all, parts) = stream(&m.tok, &c.ids, skip);
                assert_eq!(
                    all,
                    m.tok.decode(&c.ids, skip).unwrap(),
                    "{}: {:?}",
                    m.name,
                    c.text
                );
                // Valid text throughout: no replacement character from a split sequence.
                if !all.contains('\u{FFFD}') {
                    assert!(parts.iter().all(|p| !p.contains('\u{FFFD}')), "{parts:?}");
                }
            }
        }
    }
}

fn id_of(tok: &Tokenizer, piece: &str) -> u32 {
    (0..tok.vocab_size() as u32)
        .find(|&i| tok.token_piece(i) == Some(piece))
        .unwrap_or_else(|| panic!("no piece {piece:?}"))
}

#[test]
fn stream_holds_back_partial_utf8() {
    // Gemma: byte-fallback pieces of "€" (E2 82 AC), then an invalid lone lead byte.
    let g = &gemma3().tok;
    let (e2, x82, xac) = (id_of(g, "<0xE2>"), id_of(g, "<0x82>"), id_of(g, "<0xAC>"));
    let a = g.encode("a", false).unwrap();
    let mut d = StreamDecoder::new(g, true);
    assert_eq!(d.push(e2).unwrap(), "");
    assert_eq!(d.push(x82).unwrap(), "");
    assert_eq!(d.push(xac).unwrap(), "€");
    assert_eq!(d.push(e2).unwrap(), "");
    assert_eq!(d.push(a[0]).unwrap(), "\u{FFFD}a");
    assert_eq!(d.push(e2).unwrap(), "");
    assert_eq!(d.finish(), "\u{FFFD}");
    let seq = [e2, x82, xac, e2, a[0], e2];
    assert_eq!(g.decode(&seq, true).unwrap(), "€\u{FFFD}a\u{FFFD}");

    // SmolLM2: byte-level pieces of an emoji; nothing comes out before the last byte.
    let s = &smollm2().tok;
    let ids = s.encode("😀!", false).unwrap();
    assert!(ids.len() >= 2, "{ids:?}");
    let (all, parts) = stream(s, &ids, false);
    assert_eq!(all, "😀!");
    assert!(
        parts
            .iter()
            .all(|p| p.is_empty() || p.starts_with('😀') || p == "!"),
        "{parts:?}"
    );
}

#[test]
fn chat_matches_hf() {
    let m = smollm2();
    let tmpl = m.tmpl.as_ref().expect("SmolLM2 has a chat template");
    let chats = m.refs["chat"].as_array().unwrap();
    assert!(chats.len() >= 4);
    for c in chats {
        let messages: Vec<ChatMessage> = serde_json::from_value(c["messages"].clone()).unwrap();
        let gen = c["add_generation_prompt"].as_bool().unwrap();
        let want = c["text"].as_str().unwrap();
        assert_eq!(
            tmpl.render(&messages, gen).unwrap(),
            want,
            "{messages:?} gen={gen}"
        );
    }
}

#[test]
fn gemma_has_no_template() {
    let m = gemma3();
    assert!(m.tmpl.is_none());
    let e = no_template_error("gemma-3-270m").to_string();
    assert!(
        e.contains("gemma-3-270m")
            && e.contains("tokenizer.chat_template")
            && e.contains("plain prompt"),
        "{e}"
    );
}

#[test]
fn special_ids_and_eog() {
    let s = &smollm2().tok;
    assert_eq!(s.vocab_size(), 49152);
    assert_eq!((s.bos_id(), s.eos_id()), (Some(1), Some(2)));
    assert_eq!(s.token_piece(1), Some("<|im_start|>"));
    assert_eq!(s.token_piece(49152), None);
    assert!(s.is_eog(2) && s.is_eog(0) && !s.is_eog(1));
    assert_eq!(s.eog_ids(), &[0, 2]);
    let g = &gemma3().tok;
    assert_eq!(g.vocab_size(), 262144);
    assert_eq!((g.bos_id(), g.eos_id()), (Some(2), Some(1)));
    assert_eq!(g.token_piece(106), Some("<end_of_turn>"));
    // <eos> and <end_of_turn>; "</s>" is Gemma's HTML strike-through tag, not an end marker.
    assert_eq!(g.eog_ids(), &[1, 106]);
    assert!(!g.is_eog(id_of(g, "</s>")));
    // Special-token text is the special token; skip_special drops it when decoding.
    let ids = g.encode("<start_of_turn>user", false).unwrap();
    assert_eq!(ids[0], 105);
    assert_eq!(g.decode(&ids, true).unwrap(), "user");
    assert!(g.decode(&[262144], false).is_err());
    assert!(StreamDecoder::new(g, false).push(u32::MAX).is_err());
}

#[test]
fn build_is_fast() {
    // The budget is 2 s in release. Wall time on a shared 2-core machine swings with other work,
    // so the bound on it is loose; the calling thread's CPU time (the serial part: vocabulary maps
    // and the BPE merge table; deriving merges runs on rayon's threads) is held to the budget.
    for m in models() {
        assert!(
            m.build < Duration::from_secs(8),
            "{}: from_gguf took {:?}",
            m.name,
            m.build
        );
        assert!(
            m.build_cpu < Duration::from_millis(1500),
            "{}: from_gguf used {:?} of CPU on its thread",
            m.name,
            m.build_cpu
        );
    }
}

// ---- chat template semantics (no model needed) ----

#[test]
fn chat_template_semantics() {
    let src = "{% for m in messages %}\n  {{ bos_token }}{{ m.role.upper() }}: {{ m.content.strip() }}{{ eos_token }}\n{% endfor %}\n{% if add_generation_prompt %}A:{% endif %}";
    let t = ChatTemplate::from_source(src, "<s>", "</s>").unwrap();
    let msgs = [
        ChatMessage::new("user", "  hi  "),
        ChatMessage::new("assistant", "yo"),
    ];
    // trim_blocks + lstrip_blocks as HF sets them.
    assert_eq!(
        t.render(&msgs, true).unwrap(),
        "  <s>USER: hi</s>\n  <s>ASSISTANT: yo</s>\nA:"
    );
    let t = ChatTemplate::from_source(
        "{% if messages[0]['role'] != 'user' %}{{ raise_exception('first message must be from the user') }}{% endif %}ok",
        "",
        "",
    )
    .unwrap();
    let e = t
        .render(&[ChatMessage::new("system", "x")], false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("first message must be from the user"), "{e}");
    assert_eq!(
        t.render(&[ChatMessage::new("user", "x")], false).unwrap(),
        "ok"
    );
    let e = ChatTemplate::from_source("{% for %}", "", "")
        .unwrap_err()
        .to_string();
    assert!(e.contains("tokenizer.chat_template"), "{e}");
    let t = ChatTemplate::from_source("{{ messages | tojson }}", "", "").unwrap();
    let out = t.render(&[ChatMessage::new("user", "é\n")], false).unwrap();
    let back: Vec<ChatMessage> = serde_json::from_str(&out).unwrap();
    assert_eq!(back, [ChatMessage::new("user", "é\n")]);
}

// ---- malformed and synthetic vocabularies ----

fn write_gguf(kvs: Vec<(&str, Value)>) -> (tempfile::TempDir, GgufFile) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.gguf");
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", Value::String("llama".into()));
    for (k, v) in kvs {
        w.add_kv(k, v);
    }
    w.write(&path).unwrap();
    let g = GgufFile::open(&path).unwrap();
    (dir, g)
}

fn f32s(v: &[f32]) -> Value {
    Value::Array(ValueType::F32, v.iter().map(|&x| Value::F32(x)).collect())
}
fn i32s(v: &[i32]) -> Value {
    Value::Array(ValueType::I32, v.iter().map(|&x| Value::I32(x)).collect())
}

/// A tiny SentencePiece vocabulary: specials, "▁", letters, a few merges' worth of pieces, bytes.
fn spm_vocab() -> (Vec<String>, Vec<f32>, Vec<i32>) {
    let mut pieces: Vec<String> = [
        "<unk>", "<s>", "</s>", "▁", "a", "b", "▁a", "ab", "▁ab", "<ctl>",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut scores = vec![0.0, 0.0, 0.0, -1.0, -2.0, -3.0, -4.0, -5.0, -6.0, 0.0];
    let mut types = vec![2, 3, 3, 1, 1, 1, 1, 1, 1, 3];
    for b in 0..=255u8 {
        pieces.push(format!("<0x{b:02X}>"));
        scores.push(0.0);
        types.push(6);
    }
    (pieces, scores, types)
}

fn spm_kvs<'a>(pieces: &[String], scores: &[f32], types: &[i32]) -> Vec<(&'a str, Value)> {
    let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
    vec![
        ("tokenizer.ggml.model", Value::String("llama".into())),
        ("tokenizer.ggml.tokens", Value::str_array(&refs)),
        ("tokenizer.ggml.scores", f32s(scores)),
        ("tokenizer.ggml.token_type", i32s(types)),
        ("tokenizer.ggml.bos_token_id", Value::U32(1)),
        ("tokenizer.ggml.eos_token_id", Value::U32(2)),
        ("tokenizer.ggml.unknown_token_id", Value::U32(0)),
    ]
}

#[test]
fn synthetic_sentencepiece_with_space_prefix() {
    let (p, s, t) = spm_vocab();
    // add_space_prefix absent: SentencePiece's default (on); add_bos absent: on.
    let (_d, g) = write_gguf(spm_kvs(&p, &s, &t));
    let tok = Tokenizer::from_gguf(&g).unwrap();
    // "ab ab" → "▁ab▁ab": the "▁a" merge (score -4) before "ab" (-5), then "▁ab" (-6).
    assert_eq!(tok.encode("ab ab", true).unwrap(), vec![1, 8, 8]);
    assert_eq!(tok.decode(&[1, 8, 8], true).unwrap(), "ab ab");
    // HF's Strip decoder takes the space off the start of the whole text only.
    assert_eq!(tok.decode(&[1, 8, 8], false).unwrap(), "<s> ab ab");
    // "b" alone: no "▁b" piece, so "▁" + "b".
    assert_eq!(tok.encode("b", false).unwrap(), vec![3, 5]);
    // Unknown characters fall back to bytes; "<ctl>" is the control token.
    let e = 10 + 0xE2;
    assert_eq!(
        tok.encode("a€<ctl>", false).unwrap(),
        vec![6, e, 10 + 0x82, 10 + 0xAC, 9]
    );
    assert_eq!(
        tok.decode(&[6, e, 10 + 0x82, 10 + 0xAC, 9], true).unwrap(),
        "a€"
    );
    let (all, _) = stream(&tok, &[3, 6, e, 10 + 0x82, 10 + 0xAC], false);
    assert_eq!(
        all,
        tok.decode(&[3, 6, e, 10 + 0x82, 10 + 0xAC], false).unwrap()
    );
    assert_eq!(all, " a€");
    assert_eq!(tok.eog_ids(), &[2]);
}

#[test]
fn malformed_vocabularies_are_errors() {
    let (p, s, t) = spm_vocab();
    let expect_err = |kvs: Vec<(&str, Value)>, want: &str| {
        let (_d, g) = write_gguf(kvs);
        match Tokenizer::from_gguf(&g) {
            Ok(_) => panic!("accepted a vocabulary that should fail with `{want}`"),
            Err(e) => assert!(
                e.to_string().contains(want),
                "`{e}` does not mention `{want}`"
            ),
        }
    };
    // Scores one short.
    expect_err(spm_kvs(&p, &s[..s.len() - 1], &t), "tokenizer.ggml.scores");
    // Token types one short.
    expect_err(
        spm_kvs(&p, &s, &t[..t.len() - 1]),
        "tokenizer.ggml.token_type",
    );
    // No tokens array at all.
    let kvs: Vec<_> = spm_kvs(&p, &s, &t)
        .into_iter()
        .filter(|(k, _)| *k != "tokenizer.ggml.tokens")
        .collect();
    expect_err(kvs, "tokenizer.ggml.tokens");
    // SentencePiece without scores.
    let kvs: Vec<_> = spm_kvs(&p, &s, &t)
        .into_iter()
        .filter(|(k, _)| *k != "tokenizer.ggml.scores")
        .collect();
    expect_err(kvs, "tokenizer.ggml.scores");
    // Tokens that are not strings.
    let mut kvs = spm_kvs(&p, &s, &t);
    kvs[1].1 = i32s(&t);
    expect_err(kvs, "tokenizer.ggml.tokens");
    // BOS outside the vocabulary.
    let mut kvs = spm_kvs(&p, &s, &t);
    assert_eq!(kvs[4].0, "tokenizer.ggml.bos_token_id");
    kvs[4].1 = Value::U32(99_999);
    expect_err(kvs, "bos_token_id");
    // Unknown tokenizer model and unknown pre-tokenizer.
    let mut kvs = spm_kvs(&p, &s, &t);
    kvs[0].1 = Value::String("t5".into());
    expect_err(kvs, "`t5` is not supported");
    let bpe = |pre: &str, merges: &[&str]| {
        vec![
            ("tokenizer.ggml.model", Value::String("gpt2".into())),
            ("tokenizer.ggml.pre", Value::String(pre.into())),
            (
                "tokenizer.ggml.tokens",
                Value::str_array(&["a", "b", "ab", "Ġ"]),
            ),
            ("tokenizer.ggml.token_type", i32s(&[1, 1, 1, 1])),
            ("tokenizer.ggml.merges", Value::str_array(merges)),
        ]
    };
    expect_err(bpe("no-such-pre", &["a b"]), "no-such-pre");
    // A merge naming a token the vocabulary lacks, and a merge that is not "A B".
    expect_err(bpe("gpt2", &["a c"]), "merges");
    expect_err(bpe("gpt2", &["ab"]), "tokenizer.ggml.merges[0]");
    // The well-formed byte-level one works.
    let (_d, g) = write_gguf(bpe("gpt2", &["a b"]));
    let tok = Tokenizer::from_gguf(&g).unwrap();
    assert_eq!(tok.encode("ab a", true).unwrap(), vec![2, 3, 0]);
    assert_eq!(tok.decode(&[2, 3, 0], false).unwrap(), "ab a");
}

#[test]
fn long_text_round_trips() {
    // Every corpus string glued together many times: decode(encode(x)) == x for both vocabularies
    // (byte-level BPE and byte-fallback SentencePiece lose nothing), streamed or not.
    for m in models() {
        let one: String = cases(m)
            .iter()
            .map(|c| c.text.as_str())
            .collect::<Vec<_>>()
            .join(" | ");
        let text = one.repeat(20);
        let t = Instant::now();
        let ids = m.tok.encode(&text, false).unwrap();
        let took = t.elapsed();
        eprintln!(
            "{}: {} bytes -> {} ids in {took:?}",
            m.name,
            text.len(),
            ids.len()
        );
        assert_eq!(m.tok.decode(&ids, false).unwrap(), text);
        assert_eq!(stream(&m.tok, &ids, false).0, text);
    }
}
