//! The OpenAI API's request fields and response shapes (completions and chat completions, whole and
//! streamed). Requests are read leniently where OpenAI is (unknown fields are ignored, `null` means
//! absent) and strictly where a value would otherwise be guessed: wrong types, values out of range
//! and unsupported options (n > 1, tools) are 400s that name the field.

use super::error::ApiError;
use super::scheduler::{Finished, TokenOut};
use crate::model::chat::ChatMessage;
use crate::model::sampler::SamplingParams;
use serde::Deserialize;
use serde_json::{json, Value};

/// Most stop strings in one request.
pub const MAX_STOPS: usize = 16;
/// Most alternatives per token in `top_logprobs` / completions `logprobs`.
pub const MAX_TOP_LOGPROBS: usize = 20;

/// The body of `/v1/completions` and `/v1/chat/completions` (one type: the fields overlap).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RequestBody {
    pub model: Option<String>,
    /// Completions: a string, a list with one string, token ids, or a list with one list of ids.
    pub prompt: Option<Value>,
    /// Chat.
    pub messages: Option<Vec<MessageIn>>,
    pub max_tokens: Option<u64>,
    pub max_completion_tokens: Option<u64>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    /// 0 or negative = off.
    pub top_k: Option<i64>,
    pub min_p: Option<f32>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub repetition_penalty: Option<f32>,
    /// llama.cpp's name for `repetition_penalty`.
    pub repeat_penalty: Option<f32>,
    pub seed: Option<serde_json::Number>,
    pub stop: Option<StopField>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    /// Completions: an integer (alternatives per token); chat: a boolean.
    pub logprobs: Option<Value>,
    pub top_logprobs: Option<u64>,
    pub n: Option<u64>,
    /// Keep generating past end-of-generation tokens (llama.cpp's extension, for load tests).
    pub ignore_eos: Option<bool>,
    pub tools: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StopField {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StreamOptions {
    pub include_usage: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct MessageIn {
    pub role: String,
    /// A string, a list of `{"type": "text", "text": ...}` parts, or null.
    #[serde(default)]
    pub content: Option<Value>,
}

/// Which endpoint a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Completions,
    Chat,
}

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Completions => "/v1/completions",
            Endpoint::Chat => "/v1/chat/completions",
        }
    }
}

/// What the prompt is before tokenization.
#[derive(Debug, Clone)]
pub enum PromptSource {
    Text(String),
    Tokens(Vec<u32>),
    Chat(Vec<ChatMessage>),
}

/// A request read and checked, not yet tokenized.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub source: PromptSource,
    /// `max_tokens` is filled in once the prompt length is known.
    pub params: SamplingParams,
    pub max_tokens: Option<usize>,
    pub logprobs: Option<usize>,
    pub stream: bool,
    pub include_usage: bool,
    pub ignore_eos: bool,
}

fn token_ids(v: &[Value]) -> Option<Vec<u32>> {
    v.iter()
        .map(|x| x.as_u64().and_then(|n| u32::try_from(n).ok()))
        .collect()
}

fn prompt_source(p: &Value) -> Result<PromptSource, ApiError> {
    let bad = || {
        ApiError::bad_param(
            "prompt",
            "`prompt` must be a string, a list with one string, a list of token ids or a list with one list of token ids",
        )
    };
    match p {
        Value::String(s) => Ok(PromptSource::Text(s.clone())),
        Value::Array(a) if a.is_empty() => Err(ApiError::bad_param("prompt", "`prompt` is empty")),
        Value::Array(a) => {
            if a.iter().all(|x| x.is_string()) || a.iter().all(|x| x.is_array()) {
                if a.len() > 1 {
                    return Err(ApiError::bad_param(
                        "prompt",
                        format!(
                            "`prompt` holds {} prompts; this server takes one prompt per request",
                            a.len()
                        ),
                    ));
                }
                return match &a[0] {
                    Value::String(s) => Ok(PromptSource::Text(s.clone())),
                    Value::Array(ids) => token_ids(ids).map(PromptSource::Tokens).ok_or_else(bad),
                    _ => Err(bad()),
                };
            }
            token_ids(a).map(PromptSource::Tokens).ok_or_else(bad)
        }
        _ => Err(bad()),
    }
}

fn message_text(i: usize, m: &MessageIn) -> Result<String, ApiError> {
    match &m.content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for p in parts {
                match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => text.push_str(t),
                    _ => {
                        return Err(ApiError::bad_param(
                            "messages",
                            format!("messages[{i}].content: only text parts (`{{\"type\": \"text\", \"text\": ...}}`) are supported"),
                        ))
                    }
                }
            }
            Ok(text)
        }
        Some(_) => Err(ApiError::bad_param(
            "messages",
            format!("messages[{i}].content must be a string or a list of text parts"),
        )),
    }
}

/// Check a request body against its endpoint and turn it into sampling parameters and a prompt
/// source. OpenAI's defaults: temperature 1, top_p 1, no top-k, min-p or penalties.
pub fn prepare(b: RequestBody, ep: Endpoint) -> Result<Prepared, ApiError> {
    let source = match ep {
        Endpoint::Completions => match &b.prompt {
            Some(p) => prompt_source(p)?,
            None => return Err(ApiError::bad_param("prompt", "`prompt` is required")),
        },
        Endpoint::Chat => match &b.messages {
            None => return Err(ApiError::bad_param("messages", "`messages` is required")),
            Some(m) if m.is_empty() => {
                return Err(ApiError::bad_param("messages", "`messages` is empty"))
            }
            Some(m) => PromptSource::Chat(
                m.iter()
                    .enumerate()
                    .map(|(i, m)| Ok(ChatMessage::new(m.role.clone(), message_text(i, m)?)))
                    .collect::<Result<_, ApiError>>()?,
            ),
        },
    };
    if let Some(n) = b.n {
        if n != 1 {
            return Err(ApiError::bad_param(
                "n",
                format!(
                    "n = {n} is not supported: this server returns one choice per request (n = 1)"
                ),
            ));
        }
    }
    if matches!(&b.tools, Some(Value::Array(a)) if !a.is_empty()) {
        return Err(ApiError::bad_param(
            "tools",
            "tools (function calling) are not supported",
        ));
    }
    let max_tokens = match b.max_completion_tokens.or(b.max_tokens) {
        Some(0) => {
            return Err(ApiError::bad_param(
                "max_tokens",
                "max_tokens must be at least 1",
            ))
        }
        Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
        None => None,
    };
    let stop = match b.stop {
        None => Vec::new(),
        Some(StopField::One(s)) => vec![s],
        Some(StopField::Many(v)) => v,
    };
    if stop.len() > MAX_STOPS {
        return Err(ApiError::bad_param(
            "stop",
            format!("{} stop strings given; at most {MAX_STOPS}", stop.len()),
        ));
    }
    let logprobs = match ep {
        Endpoint::Completions => match &b.logprobs {
            None | Some(Value::Null) | Some(Value::Bool(false)) => None,
            Some(Value::Bool(true)) => Some(0),
            Some(v) => match v.as_u64() {
                Some(n) if n as usize <= MAX_TOP_LOGPROBS => Some(n as usize),
                _ => {
                    return Err(ApiError::bad_param(
                        "logprobs",
                        format!("logprobs must be an integer from 0 to {MAX_TOP_LOGPROBS}"),
                    ))
                }
            },
        },
        Endpoint::Chat => {
            let on = match &b.logprobs {
                None | Some(Value::Null) => false,
                Some(Value::Bool(x)) => *x,
                Some(_) => {
                    return Err(ApiError::bad_param(
                        "logprobs",
                        "logprobs must be a boolean",
                    ))
                }
            };
            let top = b.top_logprobs.unwrap_or(0);
            if top as usize > MAX_TOP_LOGPROBS {
                return Err(ApiError::bad_param(
                    "top_logprobs",
                    format!("top_logprobs = {top}; at most {MAX_TOP_LOGPROBS}"),
                ));
            }
            on.then_some(top as usize)
        }
    };
    let seed = match &b.seed {
        None => None,
        Some(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Some(u),
            (None, Some(i)) => Some(i as u64),
            _ => return Err(ApiError::bad_param("seed", "seed must be an integer")),
        },
    };
    let params = SamplingParams {
        temperature: b.temperature.unwrap_or(1.0),
        top_k: b.top_k.map(|k| k.max(0) as usize).unwrap_or(0),
        top_p: b.top_p.unwrap_or(1.0),
        min_p: b.min_p.unwrap_or(0.0),
        repetition_penalty: b.repetition_penalty.or(b.repeat_penalty).unwrap_or(1.0),
        presence_penalty: b.presence_penalty.unwrap_or(0.0),
        frequency_penalty: b.frequency_penalty.unwrap_or(0.0),
        seed,
        stop,
        ..SamplingParams::default()
    };
    params
        .validate()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Prepared {
        source,
        params,
        max_tokens,
        logprobs,
        stream: b.stream.unwrap_or(false),
        include_usage: b
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
        ignore_eos: b.ignore_eos.unwrap_or(false),
    })
}

/// Where a response's JSON comes from: id, time, model.
#[derive(Debug, Clone)]
pub struct Header {
    pub id: String,
    pub created: u64,
    pub model: String,
}

/// JSON has no infinities: a token with probability 0 gets OpenAI's floor.
fn lp(x: f32) -> f64 {
    if x.is_finite() {
        x as f64
    } else {
        -9999.0
    }
}

pub fn usage(f: &Finished) -> Value {
    json!({
        "prompt_tokens": f.prompt_tokens,
        "completion_tokens": f.completion_tokens,
        "total_tokens": f.prompt_tokens + f.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": f.cached_tokens},
    })
}

/// Completions `logprobs`: parallel lists over the tokens; `offset` = text length before the first.
pub fn completion_logprobs(tokens: &[&TokenOut], offset: usize) -> Value {
    let mut off = offset;
    let mut text_offset = Vec::new();
    let mut pieces = Vec::new();
    let mut lps = Vec::new();
    let mut tops = Vec::new();
    for t in tokens {
        let Some(l) = &t.logprobs else { continue };
        text_offset.push(off);
        off += t.piece.len();
        pieces.push(t.piece.clone());
        lps.push(lp(l.logprob));
        let mut m = serde_json::Map::new();
        for (p, v) in &l.top {
            m.entry(p.clone()).or_insert(json!(lp(*v)));
        }
        tops.push(Value::Object(m));
    }
    json!({
        "tokens": pieces,
        "token_logprobs": lps,
        "top_logprobs": tops,
        "text_offset": text_offset,
    })
}

/// Chat `logprobs`: `{"content": [{token, logprob, bytes, top_logprobs}]}`.
pub fn chat_logprobs(tokens: &[&TokenOut]) -> Value {
    let content: Vec<Value> = tokens
        .iter()
        .filter_map(|t| {
            let l = t.logprobs.as_ref()?;
            Some(json!({
                "token": t.piece,
                "logprob": lp(l.logprob),
                "bytes": t.piece.as_bytes(),
                "top_logprobs": l.top.iter().map(|(p, v)| json!({
                    "token": p, "logprob": lp(*v), "bytes": p.as_bytes(),
                })).collect::<Vec<_>>(),
            }))
        })
        .collect();
    json!({ "content": content })
}

/// A whole (non-streamed) response.
pub fn response(
    ep: Endpoint,
    h: &Header,
    text: &str,
    tokens: &[&TokenOut],
    want_logprobs: bool,
    f: &Finished,
) -> Value {
    match ep {
        Endpoint::Completions => json!({
            "id": h.id,
            "object": "text_completion",
            "created": h.created,
            "model": h.model,
            "choices": [{
                "index": 0,
                "text": text,
                "logprobs": if want_logprobs { completion_logprobs(tokens, 0) } else { Value::Null },
                "finish_reason": f.reason.as_str(),
            }],
            "usage": usage(f),
        }),
        Endpoint::Chat => json!({
            "id": h.id,
            "object": "chat.completion",
            "created": h.created,
            "model": h.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": if want_logprobs { chat_logprobs(tokens) } else { Value::Null },
                "finish_reason": f.reason.as_str(),
            }],
            "usage": usage(f),
        }),
    }
}

/// One streamed chunk with a choice. `text` is the delta; chat's first chunk passes `role`.
pub fn chunk(
    ep: Endpoint,
    h: &Header,
    text: Option<&str>,
    role: bool,
    logprobs: Option<Value>,
    finish: Option<&str>,
) -> Value {
    match ep {
        Endpoint::Completions => json!({
            "id": h.id,
            "object": "text_completion",
            "created": h.created,
            "model": h.model,
            "choices": [{
                "index": 0,
                "text": text.unwrap_or(""),
                "logprobs": logprobs,
                "finish_reason": finish,
            }],
        }),
        Endpoint::Chat => {
            let mut delta = serde_json::Map::new();
            if role {
                delta.insert("role".into(), json!("assistant"));
            }
            if let Some(t) = text {
                delta.insert("content".into(), json!(t));
            }
            json!({
                "id": h.id,
                "object": "chat.completion.chunk",
                "created": h.created,
                "model": h.model,
                "choices": [{
                    "index": 0,
                    "delta": Value::Object(delta),
                    "logprobs": logprobs,
                    "finish_reason": finish,
                }],
            })
        }
    }
}

/// The usage chunk that ends a stream with `stream_options.include_usage`: no choices.
pub fn usage_chunk(ep: Endpoint, h: &Header, f: &Finished) -> Value {
    json!({
        "id": h.id,
        "object": match ep { Endpoint::Completions => "text_completion", Endpoint::Chat => "chat.completion.chunk" },
        "created": h.created,
        "model": h.model,
        "choices": [],
        "usage": usage(f),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> RequestBody {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn prompts_in_every_shape() {
        let p = |v: Value| prepare(body(json!({"prompt": v})), Endpoint::Completions);
        assert!(matches!(p(json!("hi")).unwrap().source, PromptSource::Text(s) if s == "hi"));
        assert!(matches!(
            p(json!(["hi"])).unwrap().source,
            PromptSource::Text(_)
        ));
        assert!(
            matches!(p(json!([1, 2, 3])).unwrap().source, PromptSource::Tokens(t) if t == vec![1, 2, 3])
        );
        assert!(
            matches!(p(json!([[4, 5]])).unwrap().source, PromptSource::Tokens(t) if t == vec![4, 5])
        );
        for bad in [
            json!(["a", "b"]),
            json!([]),
            json!([-1]),
            json!([1.5]),
            json!({"a": 1}),
            json!(3),
        ] {
            assert_eq!(p(bad.clone()).unwrap_err().status, 400, "{bad}");
        }
    }

    #[test]
    fn defaults_and_refusals() {
        let ok = prepare(body(json!({"prompt": "x"})), Endpoint::Completions).unwrap();
        assert_eq!(ok.params.temperature, 1.0);
        assert_eq!(ok.params.top_k, 0);
        assert!(ok.max_tokens.is_none() && !ok.stream && ok.logprobs.is_none());
        let c = Endpoint::Completions;
        for (ep, bad) in [
            (c, json!({"prompt": "x", "n": 2})),
            (c, json!({"prompt": "x", "max_tokens": 0})),
            (c, json!({"prompt": "x", "temperature": -1})),
            (c, json!({"prompt": "x", "top_p": 0})),
            (c, json!({"prompt": "x", "logprobs": 21})),
            (c, json!({"prompt": "x", "stop": ["a", ""]})),
            (c, json!({"messages": [{"role": "user", "content": "x"}]})),
            (Endpoint::Chat, json!({"messages": []})),
            (Endpoint::Chat, json!({"prompt": "x"})),
            (
                Endpoint::Chat,
                json!({"messages": [{"role": "user", "content": 5}]}),
            ),
        ] {
            assert_eq!(
                prepare(body(bad.clone()), ep).unwrap_err().status,
                400,
                "{bad}"
            );
        }
        let chat = prepare(
            body(json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}], "logprobs": true, "top_logprobs": 3})),
            Endpoint::Chat,
        )
        .unwrap();
        assert!(matches!(chat.source, PromptSource::Chat(m) if m[0].content == "ab"));
        assert_eq!(chat.logprobs, Some(3));
    }
}
