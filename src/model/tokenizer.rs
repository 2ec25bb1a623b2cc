//! Tokenizer from the GGUF vocabulary (`tokenizer.ggml.*`), built on the `tokenizers` crate.
//!
//! Two vocabulary kinds, as `tokenizer.ggml.model` names them:
//! - `gpt2`: byte-level BPE with the GGUF's merges and the split regex that `tokenizer.ggml.pre`
//!   names (the one the model's own tokenizer.json used; an unknown name is an error, never a guess);
//! - `llama`: a SentencePiece vocabulary with scores. Built as HF's converters build it: a BPE whose
//!   merges come from the scores (a pair merges into a piece; the higher the piece's score, the
//!   earlier the merge), byte fallback to the `<0xNN>` pieces, spaces replaced by `▁`, and a `▁`
//!   prepended when `tokenizer.ggml.add_space_prefix` says so.
//!
//! CONTROL, USER_DEFINED and UNKNOWN entries are added tokens matched in the raw text before
//! anything else (CONTROL and UNKNOWN as special ones), so "<|im_start|>" in a prompt becomes that
//! token, as HF does by default. Decoding is done here, byte-exactly, from the vocabulary, so that
//! [`StreamDecoder`] can reproduce [`Tokenizer::decode`] piece by piece.

use std::collections::HashMap;

use tokenizers::models::bpe::BpeBuilder;
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormSeq};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSeq;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, NormalizerWrapper, PreTokenizerWrapper, SplitDelimiterBehavior};

use crate::error::{Error, Result};
use crate::gguf::{GgufFile, Value};

/// GGUF / SentencePiece token types (`tokenizer.ggml.token_type`).
pub(crate) const TYPE_NORMAL: i32 = 1;
pub(crate) const TYPE_UNKNOWN: i32 = 2;
pub(crate) const TYPE_CONTROL: i32 = 3;
pub(crate) const TYPE_USER_DEFINED: i32 = 4;
pub(crate) const TYPE_UNUSED: i32 = 5;
pub(crate) const TYPE_BYTE: i32 = 6;

/// Llama 3's split regex (case-insensitive contractions written out, as llama.cpp does).
const RE_LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's split regex: Llama 3's with single digits.
const RE_QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How a byte-level vocabulary splits text before BPE, by `tokenizer.ggml.pre`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PreSplit {
    /// GPT-2's regex (built into the byte-level pre-tokenizer).
    Gpt2,
    /// Every digit alone, then GPT-2's regex (StarCoder, SmolLM).
    DigitsGpt2,
    /// Llama 3's regex; whole pre-tokens found in the vocabulary skip the merges.
    Llama3,
    /// Llama 3's regex without `ignore_merges` (DBRX, Smaug).
    Llama3Merges,
    /// Qwen2's regex.
    Qwen2,
}

const PRE_NAMES: &[(&str, PreSplit)] = &[
    ("default", PreSplit::Gpt2),
    ("gpt2", PreSplit::Gpt2),
    ("gpt-2", PreSplit::Gpt2),
    ("mpt", PreSplit::Gpt2),
    ("olmo", PreSplit::Gpt2),
    ("phi-2", PreSplit::Gpt2),
    ("smollm", PreSplit::DigitsGpt2),
    ("starcoder", PreSplit::DigitsGpt2),
    ("refact", PreSplit::DigitsGpt2),
    ("command-r", PreSplit::DigitsGpt2),
    ("codeshell", PreSplit::DigitsGpt2),
    ("exaone", PreSplit::DigitsGpt2),
    ("llama-bpe", PreSplit::Llama3),
    ("llama3", PreSplit::Llama3),
    ("llama-v3", PreSplit::Llama3),
    ("falcon3", PreSplit::Llama3),
    ("dbrx", PreSplit::Llama3Merges),
    ("smaug-bpe", PreSplit::Llama3Merges),
    ("qwen2", PreSplit::Qwen2),
    ("deepseek-r1-qwen", PreSplit::Qwen2),
];

/// Vocabulary kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Byte-level BPE (`gpt2`): pieces are bytes written as GPT-2's printable characters.
    ByteLevel,
    /// SentencePiece (`llama`): `▁` stands for a space, `<0xNN>` pieces for raw bytes.
    SentencePiece,
}

/// A model's tokenizer: encode text to ids, decode ids to text.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    kind: Kind,
    pieces: Vec<String>,
    types: Vec<i32>,
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    /// Decoding drops one leading space (the one `add_space_prefix` put there).
    strip_leading_space: bool,
    eog: Vec<u32>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("kind", &self.kind)
            .field("vocab", &self.pieces.len())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("add_bos", &self.add_bos)
            .field("eog", &self.eog)
            .finish()
    }
}

/// Integers of a GGUF array as i32.
fn int_array(g: &GgufFile, key: &str) -> Result<Vec<i32>> {
    g.get_array(key)?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_int()
                .and_then(|x| i32::try_from(x).ok())
                .ok_or_else(|| gguf_err(g, format!("`{key}`[{i}] = {v:?} is not an integer")))
        })
        .collect()
}

fn float_array(g: &GgufFile, key: &str) -> Result<Vec<f32>> {
    g.get_array(key)?
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::F32(x) => Ok(*x),
            Value::F64(x) => Ok(*x as f32),
            _ => Err(gguf_err(g, format!("`{key}`[{i}] = {v:?} is not a float"))),
        })
        .collect()
}

fn gguf_err(g: &GgufFile, message: String) -> Error {
    Error::Gguf {
        path: g.path().display().to_string(),
        message,
    }
}

/// An optional token id key, checked against the vocabulary size.
fn opt_id(g: &GgufFile, key: &str, n: usize) -> Result<Option<u32>> {
    if g.get(key).is_none() {
        return Ok(None);
    }
    let id = g.get_u32(key)?;
    if id as usize >= n {
        return Err(gguf_err(
            g,
            format!("`{key}` = {id} is outside the {n}-token vocabulary"),
        ));
    }
    Ok(Some(id))
}

fn opt_bool(g: &GgufFile, key: &str) -> Result<Option<bool>> {
    match g.get(key) {
        None => Ok(None),
        Some(_) => g.get_bool(key).map(Some),
    }
}

/// GPT-2's byte → printable character table, inverted: `char as u32` (< 324) → byte.
fn byte_level_decode_table() -> Vec<Option<u8>> {
    let mut table = vec![None; 324];
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
        table[c as usize] = Some(b as u8);
    }
    table
}

/// `<0xNN>` → NN.
fn byte_piece(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// FxHash (rustc's hasher): the merge derivation hashes millions of short slices.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }
    fn write_u8(&mut self, b: u8) {
        self.write(&[b]);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

/// Merges of a SentencePiece BPE vocabulary, from its scores: every split of a piece into two
/// pieces is a merge, ranked by the merged piece's score (higher first), then its id.
fn merges_from_scores(pieces: &[String], types: &[i32], scores: &[f32]) -> Vec<(String, String)> {
    use rayon::prelude::*;
    // Pieces that BPE symbols may be: what SentencePiece keeps in its piece table.
    let symbol = |t: i32| matches!(t, TYPE_NORMAL | TYPE_USER_DEFINED | TYPE_UNUSED);
    let mut index: FxMap<&str, u32> = FxMap::default();
    index.reserve(pieces.len());
    for (i, p) in pieces.iter().enumerate() {
        if symbol(types[i]) {
            index.insert(p.as_str(), i as u32);
        }
    }
    // (merged, left, right)
    let mut found: Vec<(u32, u32, u32)> = pieces
        .par_iter()
        .enumerate()
        .filter(|(i, p)| {
            matches!(types[*i], TYPE_NORMAL | TYPE_USER_DEFINED)
                && index.get(p.as_str()) == Some(&(*i as u32))
        })
        .flat_map_iter(|(i, p)| {
            let index = &index;
            p.char_indices().skip(1).filter_map(move |(k, _)| {
                match (index.get(&p[..k]), index.get(&p[k..])) {
                    (Some(&l), Some(&r)) => Some((i as u32, l, r)),
                    _ => None,
                }
            })
        })
        .collect();
    found.par_sort_unstable_by(|a, b| {
        scores[b.0 as usize]
            .total_cmp(&scores[a.0 as usize])
            .then(a.0.cmp(&b.0))
            .then(a.1.cmp(&b.1))
            .then(a.2.cmp(&b.2))
    });
    found
        .into_par_iter()
        .map(|(_, l, r)| (pieces[l as usize].clone(), pieces[r as usize].clone()))
        .collect()
}

impl Tokenizer {
    /// Build the tokenizer from a GGUF file's `tokenizer.ggml.*` metadata.
    pub fn from_gguf(g: &GgufFile) -> Result<Tokenizer> {
        let model = g.get_str("tokenizer.ggml.model")?;
        let kind = match model {
            "gpt2" => Kind::ByteLevel,
            "llama" => Kind::SentencePiece,
            other => {
                return Err(gguf_err(
                    g,
                    format!(
                        "tokenizer.ggml.model `{other}` is not supported (supported: gpt2 = byte-level BPE, llama = SentencePiece)"
                    ),
                ))
            }
        };
        let pieces: Vec<String> = g
            .get_str_array("tokenizer.ggml.tokens")?
            .into_iter()
            .map(str::to_owned)
            .collect();
        let n = pieces.len();
        if n == 0 || n > u32::MAX as usize {
            return Err(gguf_err(
                g,
                format!("tokenizer.ggml.tokens has {n} entries"),
            ));
        }
        let types = if g.get("tokenizer.ggml.token_type").is_some() {
            let t = int_array(g, "tokenizer.ggml.token_type")?;
            if t.len() != n {
                return Err(gguf_err(
                    g,
                    format!(
                        "tokenizer.ggml.token_type has {} entries but tokenizer.ggml.tokens has {n}",
                        t.len()
                    ),
                ));
            }
            t
        } else {
            vec![TYPE_NORMAL; n]
        };

        let bos = opt_id(g, "tokenizer.ggml.bos_token_id", n)?;
        let eos = opt_id(g, "tokenizer.ggml.eos_token_id", n)?;
        let unk = opt_id(g, "tokenizer.ggml.unknown_token_id", n)?;
        let pre = match kind {
            Kind::ByteLevel => {
                let name = match g.get("tokenizer.ggml.pre") {
                    None => "default",
                    Some(_) => g.get_str("tokenizer.ggml.pre")?,
                };
                let split = PRE_NAMES.iter().find(|(k, _)| *k == name).map(|(_, s)| *s);
                Some(split.ok_or_else(|| {
                    let known: Vec<&str> = PRE_NAMES.iter().map(|(k, _)| *k).collect();
                    gguf_err(
                        g,
                        format!(
                            "tokenizer.ggml.pre `{name}` is not supported (supported: {})",
                            known.join(", ")
                        ),
                    )
                })?)
            }
            Kind::SentencePiece => None,
        };
        // Defaults when the GGUF is silent: SentencePiece and Llama 3 vocabularies add BOS.
        let add_bos = opt_bool(g, "tokenizer.ggml.add_bos_token")?
            .unwrap_or(kind == Kind::SentencePiece || pre == Some(PreSplit::Llama3));
        let add_eos = opt_bool(g, "tokenizer.ggml.add_eos_token")?.unwrap_or(false);
        if add_bos && bos.is_none() {
            return Err(gguf_err(
                g,
                "the tokenizer adds BOS but tokenizer.ggml.bos_token_id is missing".into(),
            ));
        }
        if add_eos && eos.is_none() {
            return Err(gguf_err(
                g,
                "the tokenizer adds EOS but tokenizer.ggml.eos_token_id is missing".into(),
            ));
        }
        let add_space_prefix = kind == Kind::SentencePiece
            && opt_bool(g, "tokenizer.ggml.add_space_prefix")?.unwrap_or(true);

        // The model's vocabulary: a later duplicate of a piece wins, as in llama.cpp.
        let vocab: tokenizers::models::bpe::Vocab = pieces
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), i as u32))
            .collect();
        let builder = match kind {
            Kind::ByteLevel => {
                let raw = g.get_str_array("tokenizer.ggml.merges")?;
                let mut merges = Vec::with_capacity(raw.len());
                for (i, m) in raw.iter().enumerate() {
                    let (a, b) = m.split_once(' ').ok_or_else(|| {
                        gguf_err(
                            g,
                            format!("tokenizer.ggml.merges[{i}] = {m:?} is not \"A B\""),
                        )
                    })?;
                    merges.push((a.to_owned(), b.to_owned()));
                }
                BpeBuilder::new()
                    .vocab_and_merges(vocab, merges)
                    .ignore_merges(pre == Some(PreSplit::Llama3))
            }
            Kind::SentencePiece => {
                if g.get("tokenizer.ggml.scores").is_none() {
                    return Err(gguf_err(
                        g,
                        "a SentencePiece (`llama`) vocabulary needs tokenizer.ggml.scores, which is missing".into(),
                    ));
                }
                let scores = float_array(g, "tokenizer.ggml.scores")?;
                if scores.len() != n {
                    return Err(gguf_err(
                        g,
                        format!(
                            "tokenizer.ggml.scores has {} entries but tokenizer.ggml.tokens has {n}",
                            scores.len()
                        ),
                    ));
                }
                let merges = merges_from_scores(&pieces, &types, &scores);
                let unk_piece = unk
                    .or_else(|| {
                        types
                            .iter()
                            .position(|&t| t == TYPE_UNKNOWN)
                            .map(|i| i as u32)
                    })
                    .map(|i| pieces[i as usize].clone());
                let mut b = BpeBuilder::new()
                    .vocab_and_merges(vocab, merges)
                    .byte_fallback(true)
                    .fuse_unk(true);
                if let Some(u) = unk_piece {
                    b = b.unk_token(u);
                }
                b
            }
        };
        let bpe = builder.build().map_err(|e| {
            let what = match kind {
                Kind::ByteLevel => "tokenizer.ggml.merges do not fit tokenizer.ggml.tokens",
                Kind::SentencePiece => "building the BPE model from tokenizer.ggml.tokens/scores",
            };
            gguf_err(g, format!("{what}: {e}"))
        })?;
        let mut inner = tokenizers::Tokenizer::new(bpe);

        match kind {
            Kind::SentencePiece => {
                let replace = Replace::new(" ", "▁")
                    .map_err(|e| gguf_err(g, format!("space normalizer: {e}")))?;
                let norm: NormalizerWrapper = if add_space_prefix {
                    NormSeq::new(vec![Prepend::new("▁".into()).into(), replace.into()]).into()
                } else {
                    replace.into()
                };
                inner.with_normalizer(Some(norm));
            }
            Kind::ByteLevel => {
                let split = |re: &str| -> Result<PreTokenizerWrapper> {
                    Split::new(
                        SplitPattern::Regex(re.to_owned()),
                        SplitDelimiterBehavior::Isolated,
                        false,
                    )
                    .map(Into::into)
                    .map_err(|e| gguf_err(g, format!("pre-tokenizer regex: {e}")))
                };
                let bytes_regex: PreTokenizerWrapper = ByteLevel::new(false, true, true).into();
                let bytes_only: PreTokenizerWrapper = ByteLevel::new(false, true, false).into();
                let pt: PreTokenizerWrapper = match pre.unwrap_or(PreSplit::Gpt2) {
                    PreSplit::Gpt2 => bytes_regex,
                    PreSplit::DigitsGpt2 => PreSeq::new(vec![split(r"\p{N}")?, bytes_regex]).into(),
                    PreSplit::Llama3 | PreSplit::Llama3Merges => {
                        PreSeq::new(vec![split(RE_LLAMA3)?, bytes_only]).into()
                    }
                    PreSplit::Qwen2 => PreSeq::new(vec![split(RE_QWEN2)?, bytes_only]).into(),
                };
                inner.with_pre_tokenizer(Some(pt));
            }
        }

        // Added tokens, matched in the raw text: CONTROL/UNKNOWN as special, USER_DEFINED as plain.
        let added: Vec<AddedToken> = pieces
            .iter()
            .zip(&types)
            .filter(|(p, t)| {
                !p.is_empty() && matches!(**t, TYPE_CONTROL | TYPE_UNKNOWN | TYPE_USER_DEFINED)
            })
            .map(|(p, &t)| AddedToken::from(p.clone(), t != TYPE_USER_DEFINED).normalized(false))
            .collect();
        inner.add_tokens(&added);

        let eog = eog_ids(g, &pieces, &types, eos)?;
        Ok(Tokenizer {
            inner,
            kind,
            pieces,
            types,
            bos,
            eos,
            add_bos,
            add_eos,
            strip_leading_space: add_space_prefix,
            eog,
        })
    }

    /// Text → ids. `add_special` adds BOS (and EOS) as the GGUF says. Special-token text in `text`
    /// (e.g. "<|im_start|>") becomes that token.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| Error::op("tokenizer encode", e.to_string()))?;
        let body = enc.get_ids();
        let mut ids = Vec::with_capacity(body.len() + 2);
        if add_special && self.add_bos {
            ids.extend(self.bos);
        }
        ids.extend_from_slice(body);
        if add_special && self.add_eos {
            ids.extend(self.eos);
        }
        Ok(ids)
    }

    /// Ids → text. `skip_special` leaves out CONTROL and UNKNOWN tokens (BOS, EOS, <|im_end|>...).
    /// Bytes that do not form UTF-8 become U+FFFD.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        let mut started = false;
        for &id in ids {
            let at = bytes.len();
            self.append_bytes(id, skip_special, &mut bytes)?;
            if !started && bytes.len() > at {
                started = true;
                if self.strip_leading_space && bytes[at] == b' ' {
                    bytes.remove(at);
                }
            }
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Number of entries in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }
    /// Beginning-of-sequence token.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }
    /// End-of-sequence token.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }
    /// Whether generation stops at this token.
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }
    /// Every end-of-generation token, ascending.
    pub fn eog_ids(&self) -> &[u32] {
        &self.eog
    }
    /// The raw vocabulary entry of a token.
    pub fn token_piece(&self, id: u32) -> Option<&str> {
        self.pieces.get(id as usize).map(String::as_str)
    }

    fn is_special(&self, id: usize) -> bool {
        matches!(self.types[id], TYPE_CONTROL | TYPE_UNKNOWN)
    }

    /// The bytes one token stands for (none for a skipped special token).
    fn append_bytes(&self, id: u32, skip_special: bool, out: &mut Vec<u8>) -> Result<()> {
        let i = id as usize;
        let piece = self.pieces.get(i).ok_or_else(|| {
            Error::op(
                "tokenizer decode",
                format!(
                    "token id {id} is outside the {}-token vocabulary",
                    self.pieces.len()
                ),
            )
        })?;
        let ty = self.types[i];
        if self.is_special(i) {
            if !skip_special {
                out.extend_from_slice(piece.as_bytes());
            }
            return Ok(());
        }
        if ty == TYPE_USER_DEFINED {
            // Stored as the text it stands for (spaces and all).
            out.extend_from_slice(piece.as_bytes());
            return Ok(());
        }
        match self.kind {
            Kind::SentencePiece => {
                if let Some(b) = byte_piece(piece).filter(|_| ty == TYPE_BYTE || ty == TYPE_NORMAL)
                {
                    out.push(b);
                } else {
                    for c in piece.chars() {
                        if c == '▁' {
                            out.push(b' ');
                        } else {
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        }
                    }
                }
            }
            Kind::ByteLevel => {
                let table = byte_level_table();
                let at = out.len();
                for c in piece.chars() {
                    match table.get(c as usize).copied().flatten() {
                        Some(b) => out.push(b),
                        None => {
                            // Not a byte-level piece: its text as it is.
                            out.truncate(at);
                            out.extend_from_slice(piece.as_bytes());
                            break;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn byte_level_table() -> &'static [Option<u8>] {
    static TABLE: std::sync::OnceLock<Vec<Option<u8>>> = std::sync::OnceLock::new();
    TABLE.get_or_init(byte_level_decode_table)
}

/// End-of-generation ids: EOS, the declared EOT/EOM, and the end markers present in the vocabulary.
fn eog_ids(g: &GgufFile, pieces: &[String], types: &[i32], eos: Option<u32>) -> Result<Vec<u32>> {
    const MARKERS: &[&str] = &[
        "<|eot_id|>",
        "<|im_end|>",
        "<|end|>",
        "<end_of_turn>",
        "<|endoftext|>",
        "<|eom_id|>",
        "<|return|>",
        "<|call|>",
        "<EOT>",
        "_<EOT>",
        "<|end_of_text|>",
        "<end_of_utterance>",
        "<｜end▁of▁sentence｜>",
    ];
    let n = pieces.len();
    let mut ids: Vec<u32> = eos.into_iter().collect();
    for key in ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"] {
        ids.extend(opt_id(g, key, n)?);
    }
    for (i, p) in pieces.iter().enumerate() {
        let marker = MARKERS.contains(&p.as_str()) && types[i] != TYPE_NORMAL;
        // "</s>" ends generation only as a control token (in Gemma it is the HTML tag).
        let eos_like = p == "</s>" && types[i] == TYPE_CONTROL;
        if marker || eos_like {
            ids.push(i as u32);
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Streaming detokenization: text as tokens arrive, never broken UTF-8. Incomplete byte sequences
/// are held back until completed; the concatenation of every `push` and the final `finish` equals
/// [`Tokenizer::decode`] of the whole sequence.
pub struct StreamDecoder<'a> {
    tok: &'a Tokenizer,
    skip_special: bool,
    pending: Vec<u8>,
    started: bool,
}

impl<'a> StreamDecoder<'a> {
    /// A decoder over `tok`; `skip_special` as in [`Tokenizer::decode`].
    pub fn new(tok: &'a Tokenizer, skip_special: bool) -> Self {
        StreamDecoder {
            tok,
            skip_special,
            pending: Vec::new(),
            started: false,
        }
    }

    /// Add one token; returns the text it completes (may be empty).
    pub fn push(&mut self, id: u32) -> Result<String> {
        let at = self.pending.len();
        self.tok
            .append_bytes(id, self.skip_special, &mut self.pending)?;
        if !self.started && self.pending.len() > at {
            self.started = true;
            if self.tok.strip_leading_space && self.pending[at] == b' ' {
                self.pending.remove(at);
            }
        }
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    out.push_str(&String::from_utf8_lossy(valid));
                    match e.error_len() {
                        // Invalid for good: one replacement character, as a lossy decode gives.
                        Some(len) => {
                            out.push('\u{FFFD}');
                            rest = &after[len..];
                        }
                        // Incomplete at the end: wait for the next token.
                        None => {
                            rest = after;
                            break;
                        }
                    }
                }
            }
        }
        let keep = rest.len();
        let cut = self.pending.len() - keep;
        self.pending.drain(..cut);
        Ok(out)
    }

    /// Whatever is held back (an incomplete sequence becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}
