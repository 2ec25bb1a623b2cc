//! Synthetic vocabularies (`tokenizer.ggml.*`) of any size that both llama.cpp and
//! [`crate::model::tokenizer::Tokenizer`] load, and the copy of a real file's vocabulary padded to
//! the embedding's row count.
//!
//! * Byte-level BPE (`gpt2`): the special tokens, the 256 byte symbols (GPT-2's byte → printable
//!   character map), then pieces each made by one merge of two earlier pieces, so the merge list
//!   is consistent (both sides and the result are tokens; the result is new). Every NORMAL piece
//!   is made of byte symbols only, as llama.cpp's byte-level decoder requires.
//! * SentencePiece (`llama`, gemma-style): `<pad> <eos> <bos> <unk>`, the byte tokens
//!   `<0x00>..<0xFF>` (token type 6), single characters (`▁` for a space), then merged pieces
//!   whose score falls with their creation order (so a piece always scores below the pieces it is
//!   made of, as BPE-trained SentencePiece vocabularies do).
//!
//! The pieces come from a fixed generator seed: the vocabulary is the same for every weight seed.

use std::collections::HashSet;

use super::random::Rng;
use crate::error::{Error, Result};
use crate::gguf::{Value, ValueType};

/// GGUF token types (the tokenizer's one table).
use crate::model::tokenizer::{
    TYPE_BYTE as BYTE, TYPE_CONTROL as CONTROL, TYPE_NORMAL as NORMAL, TYPE_UNKNOWN as UNKNOWN,
    TYPE_UNUSED as UNUSED,
};

/// Longest merged piece, in characters.
const MAX_PIECE_CHARS: usize = 12;
/// Seed of the piece generator (independent of the weight seed).
const VOCAB_SEED: u64 = 0x70C3_5EED_0000_0001;

/// The shape of a synthetic vocabulary.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum VocabStyle {
    /// Byte-level BPE with this `tokenizer.ggml.pre`, these control tokens first, and BOS/EOS as
    /// indices into `specials`.
    ByteLevel {
        pre: &'static str,
        specials: &'static [&'static str],
        bos: u32,
        eos: u32,
        add_bos: bool,
    },
    /// SentencePiece (gemma-style ids: pad 0, eos 1, bos 2, unk 3; no space prefix).
    SentencePiece,
}

fn err(message: String) -> Error {
    Error::Gguf {
        path: "<synth>".into(),
        message,
    }
}

/// GPT-2's byte → printable character map.
fn byte_symbols() -> [char; 256] {
    let mut out = ['\0'; 256];
    let mut extra = 0u32;
    for b in 0u32..256 {
        let printable =
            (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        let c = if printable {
            b
        } else {
            extra += 1;
            255 + extra
        };
        out[b as usize] = char::from_u32(c).unwrap_or('?');
    }
    out
}

/// Characters that merged pieces are made of (as bytes of text).
const ALPHABET: &[u8] =
    b" abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,'!?-:;()\"";

/// New pieces and, for each, the pool indices of the two pieces it joins.
type Grown = (Vec<String>, Vec<(usize, usize)>);

/// Grow `pool` (pieces that may be merged) by merges until `count` new pieces exist; returns the
/// new pieces and their merges. A piece never has `space` except as its first character.
fn grow(
    pool: &mut Vec<String>,
    taken: &mut HashSet<String>,
    space: char,
    count: usize,
) -> Result<Grown> {
    let mut rng = Rng::new(VOCAB_SEED);
    let mut pieces = Vec::with_capacity(count);
    let mut merges = Vec::with_capacity(count);
    let mut attempts = 0usize;
    let limit = count.saturating_mul(200).max(10_000);
    while pieces.len() < count {
        attempts += 1;
        if attempts > limit {
            return Err(err(format!(
                "could not make {count} distinct synthetic pieces (made {})",
                pieces.len()
            )));
        }
        let (a, b) = (rng.biased_index(pool.len()), rng.biased_index(pool.len()));
        let (l, r) = (&pool[a], &pool[b]);
        if r.starts_with(space) || l.chars().count() + r.chars().count() > MAX_PIECE_CHARS {
            continue;
        }
        let joined = format!("{l}{r}");
        if !taken.insert(joined.clone()) {
            continue;
        }
        merges.push((a, b));
        pieces.push(joined.clone());
        pool.push(joined);
    }
    Ok((pieces, merges))
}

fn str_array(items: Vec<String>) -> Value {
    Value::Array(
        ValueType::String,
        items.into_iter().map(Value::String).collect(),
    )
}

fn i32_array(items: Vec<i32>) -> Value {
    Value::Array(ValueType::I32, items.into_iter().map(Value::I32).collect())
}

fn f32_array(items: Vec<f32>) -> Value {
    Value::Array(ValueType::F32, items.into_iter().map(Value::F32).collect())
}

/// The `tokenizer.*` metadata of a synthetic vocabulary of exactly `n` tokens.
pub(super) fn synthetic(style: VocabStyle, n: usize) -> Result<Vec<(String, Value)>> {
    match style {
        VocabStyle::ByteLevel {
            pre,
            specials,
            bos,
            eos,
            add_bos,
        } => byte_level(n, pre, specials, bos, eos, add_bos),
        VocabStyle::SentencePiece => sentencepiece(n),
    }
}

fn byte_level(
    n: usize,
    pre: &str,
    specials: &[&str],
    bos: u32,
    eos: u32,
    add_bos: bool,
) -> Result<Vec<(String, Value)>> {
    let symbols = byte_symbols();
    let fixed = specials.len() + 256;
    if n <= fixed {
        return Err(err(format!(
            "a byte-level vocabulary needs more than {fixed} tokens ({} special + 256 bytes), asked for {n}",
            specials.len()
        )));
    }
    if bos as usize >= specials.len() || eos as usize >= specials.len() {
        return Err(err(format!(
            "bos {bos} / eos {eos} outside the {} special tokens",
            specials.len()
        )));
    }
    let mut tokens: Vec<String> = specials.iter().map(|s| s.to_string()).collect();
    let mut types = vec![CONTROL; specials.len()];
    tokens.extend(symbols.iter().map(|c| c.to_string()));
    types.extend(std::iter::repeat(NORMAL).take(256));
    let mut taken: HashSet<String> = tokens.iter().cloned().collect();
    if taken.len() != tokens.len() {
        return Err(err("duplicate special tokens".into()));
    }
    let mut pool: Vec<String> = ALPHABET
        .iter()
        .map(|&b| symbols[b as usize].to_string())
        .collect();
    let space = symbols[b' ' as usize];
    let (pieces, merges) = grow(&mut pool, &mut taken, space, n - fixed)?;
    let merges: Vec<String> = merges
        .iter()
        .map(|&(a, b)| format!("{} {}", pool[a], pool[b]))
        .collect();
    tokens.extend(pieces);
    types.extend(std::iter::repeat(NORMAL).take(n - fixed));
    Ok(vec![
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String(pre.into())),
        ("tokenizer.ggml.tokens".into(), str_array(tokens)),
        ("tokenizer.ggml.token_type".into(), i32_array(types)),
        ("tokenizer.ggml.merges".into(), str_array(merges)),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(bos)),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(eos)),
        ("tokenizer.ggml.padding_token_id".into(), Value::U32(eos)),
        ("tokenizer.ggml.add_bos_token".into(), Value::Bool(add_bos)),
        ("tokenizer.ggml.add_eos_token".into(), Value::Bool(false)),
    ])
}

fn sentencepiece(n: usize) -> Result<Vec<(String, Value)>> {
    let mut tokens: Vec<String> = ["<pad>", "<eos>", "<bos>", "<unk>"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut types = vec![CONTROL, CONTROL, CONTROL, UNKNOWN];
    let mut scores = vec![-1000.0f32; 4];
    for b in 0..256 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(BYTE);
        scores.push(0.0);
    }
    let space = '▁';
    let mut pool: Vec<String> = ALPHABET
        .iter()
        .map(|&b| {
            if b == b' ' {
                space.to_string()
            } else {
                (b as char).to_string()
            }
        })
        .collect();
    let fixed = tokens.len() + pool.len();
    if n <= fixed {
        return Err(err(format!(
            "a SentencePiece vocabulary needs more than {fixed} tokens (4 special, 256 bytes, {} characters), asked for {n}",
            pool.len()
        )));
    }
    for p in &pool {
        tokens.push(p.clone());
        types.push(NORMAL);
        // single characters: below every merged piece (they are never merge results)
        scores.push(-1.0e6);
    }
    let mut taken: HashSet<String> = tokens.iter().cloned().collect();
    let (pieces, _) = grow(&mut pool, &mut taken, space, n - fixed)?;
    for (k, p) in pieces.into_iter().enumerate() {
        tokens.push(p);
        types.push(NORMAL);
        scores.push(-(k as f32));
    }
    Ok(vec![
        ("tokenizer.ggml.model".into(), Value::String("llama".into())),
        ("tokenizer.ggml.pre".into(), Value::String("default".into())),
        ("tokenizer.ggml.tokens".into(), str_array(tokens)),
        ("tokenizer.ggml.scores".into(), f32_array(scores)),
        ("tokenizer.ggml.token_type".into(), i32_array(types)),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(2)),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(1)),
        ("tokenizer.ggml.unknown_token_id".into(), Value::U32(3)),
        ("tokenizer.ggml.padding_token_id".into(), Value::U32(0)),
        ("tokenizer.ggml.add_bos_token".into(), Value::Bool(true)),
        ("tokenizer.ggml.add_eos_token".into(), Value::Bool(false)),
        ("tokenizer.ggml.add_space_prefix".into(), Value::Bool(false)),
    ])
}

/// Number of tokens in copied `tokenizer.*` metadata.
pub(super) fn token_count(kvs: &[(String, Value)]) -> Option<usize> {
    kvs.iter()
        .find(|(k, _)| k == "tokenizer.ggml.tokens")
        .and_then(|(_, v)| v.as_array())
        .map(<[Value]>::len)
}

/// Pad copied `tokenizer.*` metadata to `n` tokens with `[PAD{i}]` entries of type UNUSED (as
/// llama.cpp's converter pads a vocabulary to the embedding size); error if it has more than `n`.
pub(super) fn pad(kvs: &mut [(String, Value)], n: usize, from: &str) -> Result<()> {
    let have =
        token_count(kvs).ok_or_else(|| err(format!("{from} has no tokenizer.ggml.tokens")))?;
    if have > n {
        return Err(err(format!(
            "the vocabulary from {from} has {have} tokens but the embedding only {n} rows (--vocab must be at least {have})"
        )));
    }
    if have == n {
        return Ok(());
    }
    let mut existing: HashSet<String> = HashSet::new();
    for (k, v) in kvs.iter_mut() {
        let Value::Array(et, items) = v else { continue };
        if items.len() != have {
            continue;
        }
        match (k.as_str(), *et) {
            ("tokenizer.ggml.tokens", ValueType::String) => {
                existing.extend(items.iter().filter_map(|v| v.as_str().map(str::to_owned)));
                for i in have..n {
                    let piece = format!("[PAD{i}]");
                    if existing.contains(&piece) {
                        return Err(err(format!(
                            "cannot pad the vocabulary from {from}: it already has a token `{piece}`"
                        )));
                    }
                    items.push(Value::String(piece));
                }
            }
            ("tokenizer.ggml.token_type", ValueType::I32) => {
                items.extend((have..n).map(|_| Value::I32(UNUSED)))
            }
            ("tokenizer.ggml.scores", ValueType::F32) => {
                items.extend((have..n).map(|_| Value::F32(-1000.0)))
            }
            _ => {}
        }
    }
    Ok(())
}
