//! The HTTP side: routes, API keys, body limits, tokenization, and turning the scheduler's events
//! into OpenAI responses (whole JSON or server-sent events ending `data: [DONE]`).

use super::api::{self, Endpoint, Header, Prepared, PromptSource, RequestBody};
use super::error::ApiError;
use super::metrics::Metrics;
use super::scheduler::{Event, Request as GenRequest, SchedulerHandle, TokenOut};
use crate::model::chat::ChatTemplate;
use crate::model::engine::EngineLimits;
use crate::model::tokenizer::Tokenizer;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc::UnboundedReceiver;

/// What every handler shares.
pub struct AppState {
    /// The name clients pass as `model`.
    pub model_id: String,
    /// Other names accepted for it (the file name).
    pub aliases: Vec<String>,
    pub tokenizer: Arc<Tokenizer>,
    pub template: Option<Arc<ChatTemplate>>,
    pub sched: SchedulerHandle,
    pub metrics: Arc<Metrics>,
    pub limits: EngineLimits,
    /// Embedding rows: token ids in prompts must be below this.
    pub vocab: usize,
    pub api_key: Option<String>,
    /// Requests generating or queued at most; more get 429.
    pub max_inflight: usize,
    pub inflight: Arc<AtomicUsize>,
    /// Set on shutdown: new generation requests get 503.
    pub draining: AtomicBool,
    pub body_limit: usize,
    pub created: u64,
    /// Shown under `/v1/models`.
    pub meta: Value,
}

impl AppState {
    /// Tokens a sequence can hold: the context size, or the whole KV cache when that is smaller.
    pub fn ctx_limit(&self) -> usize {
        self.limits
            .ctx_size
            .min(self.limits.num_pages * self.limits.page_size)
    }

    fn check_auth(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(key) = &self.api_key else {
            return Ok(());
        };
        let Some(v) = headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::unauthorized(
                "missing API key: send `Authorization: Bearer KEY`",
            ));
        };
        let given = v
            .to_str()
            .ok()
            .and_then(|s| s.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), key.as_bytes()) {
            return Err(ApiError::unauthorized("incorrect API key"));
        }
        Ok(())
    }

    fn known_model(&self, name: &str) -> bool {
        name == self.model_id || self.aliases.iter().any(|a| a == name)
    }

    fn check_model(&self, name: Option<&str>) -> Result<(), ApiError> {
        match name {
            None => Ok(()),
            Some(n) if self.known_model(n) => Ok(()),
            Some(n) => {
                let mut e = ApiError::not_found(
                    format!(
                        "the model `{n}` does not exist; this server serves `{}`",
                        self.model_id
                    ),
                    "model_not_found",
                );
                e.param = Some("model");
                Err(e)
            }
        }
    }

    /// Token ids for a prompt (BOS as the tokenizer adds it; chats through the GGUF's template).
    fn tokenize(&self, src: PromptSource) -> Result<Vec<u32>, ApiError> {
        let ids = match src {
            PromptSource::Tokens(ids) => {
                if let Some(&bad) = ids.iter().find(|&&t| t as usize >= self.vocab) {
                    return Err(ApiError::bad_param(
                        "prompt",
                        format!(
                            "token id {bad} is outside the {}-token vocabulary",
                            self.vocab
                        ),
                    ));
                }
                ids
            }
            PromptSource::Text(t) => self
                .tokenizer
                .encode(&t, true)
                .map_err(|e| ApiError::bad_param("prompt", e.to_string()))?,
            PromptSource::Chat(m) => {
                let Some(tpl) = &self.template else {
                    return Err(ApiError::bad_request(format!(
                        "the model `{}` has no chat template; use /v1/completions",
                        self.model_id
                    )));
                };
                let text = tpl
                    .render(&m, true)
                    .map_err(|e| ApiError::bad_param("messages", e.to_string()))?;
                self.tokenizer
                    .encode(&text, true)
                    .map_err(|e| ApiError::bad_param("messages", e.to_string()))?
            }
        };
        if ids.is_empty() {
            return Err(ApiError::bad_param(
                "prompt",
                "the prompt is empty (no tokens)",
            ));
        }
        Ok(ids)
    }
}

/// Compare without stopping at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One place in the bounded set of requests in flight; freed when dropped.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn acquire(count: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(count.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/models", get(models))
        .route("/v1/models/{id}", get(model))
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions))
        .fallback(not_found)
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(middleware::from_fn_with_state(state.clone(), record))
        .with_state(state)
}

/// Count every response by endpoint and status.
async fn record(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let ep = match path {
        "/health" | "/metrics" | "/v1/models" | "/v1/completions" | "/v1/chat/completions" => {
            path.to_string()
        }
        p if p.starts_with("/v1/models/") => "/v1/models/{id}".to_string(),
        _ => "other".to_string(),
    };
    let r = next.run(req).await;
    st.metrics.request(&ep, r.status().as_u16());
    r
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()), "not_found")
}

async fn health(State(st): State<Arc<AppState>>) -> Response {
    if st.draining.load(Ordering::Acquire) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "shutting down"})),
        )
            .into_response();
    }
    let g = st.metrics.gauges();
    let k = crate::jit::Jit::global().deferred().status();
    Json(json!({
        "status": "ok",
        "model": st.model_id,
        "running": g.running,
        "waiting": g.waiting,
        "kernels": {"pending": k.pending, "landed": k.landed, "failed": k.failed, "generation": k.generation},
    }))
    .into_response()
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        st.metrics.render(),
    )
        .into_response()
}

fn model_card(st: &AppState) -> Value {
    json!({
        "id": st.model_id,
        "object": "model",
        "created": st.created,
        "owned_by": "rocmforge",
        "meta": st.meta,
    })
}

async fn models(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    st.check_auth(&headers)?;
    Ok(Json(json!({"object": "list", "data": [model_card(&st)]})).into_response())
}

async fn model(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.check_auth(&headers)?;
    st.check_model(Some(&id))?;
    Ok(Json(model_card(&st)).into_response())
}

async fn completions(State(st): State<Arc<AppState>>, req: Request) -> Response {
    generate(st, req, Endpoint::Completions)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn chat_completions(State(st): State<Arc<AppState>>, req: Request) -> Response {
    generate(st, req, Endpoint::Chat)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// The body, refused with 413 as soon as it is known to exceed `limit` (by its Content-Length, or
/// while reading).
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    if let Some(n) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<u64>().ok())
    {
        if n > limit as u64 {
            return Err(ApiError::too_large(limit));
        }
    }
    let mut out = Vec::new();
    let mut s = body.into_data_stream();
    while let Some(chunk) = s.next().await {
        let c = chunk.map_err(|e| ApiError::bad_request(format!("reading the body: {e}")))?;
        if out.len() + c.len() > limit {
            return Err(ApiError::too_large(limit));
        }
        out.extend_from_slice(&c);
    }
    Ok(out)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn generate(st: Arc<AppState>, req: Request, ep: Endpoint) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    let (parts, body) = req.into_parts();
    st.check_auth(&parts.headers)?;
    let bytes = read_body(&parts.headers, body, st.body_limit).await?;
    let body: RequestBody = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    st.check_model(body.model.as_deref())?;
    let prep = api::prepare(body, ep)?;
    let st2 = st.clone();
    let src = prep.source.clone();
    let prompt = tokio::task::spawn_blocking(move || st2.tokenize(src))
        .await
        .map_err(|e| ApiError::internal(format!("tokenizing: {e}")))??;
    let ctx = st.ctx_limit();
    let p = prompt.len();
    let max_tokens = match prep.max_tokens {
        Some(m) if p.saturating_add(m) > ctx => {
            return Err(ApiError::bad_param(
                "max_tokens",
                format!(
                    "this model's maximum context length is {ctx} tokens, but {} were requested ({p} in the prompt, {m} for the completion); shorten the prompt or lower max_tokens",
                    p.saturating_add(m)
                ),
            ))
        }
        Some(m) => m,
        None if p >= ctx => {
            return Err(ApiError::bad_param(
                "prompt",
                format!(
                    "this model's maximum context length is {ctx} tokens and the prompt has {p}: no room for a completion"
                ),
            ))
        }
        None => ctx - p,
    };
    if st.draining.load(Ordering::Acquire) {
        return Err(ApiError::unavailable("the server is shutting down"));
    }
    let slot = Slot::acquire(&st.inflight, st.max_inflight)
        .ok_or_else(|| ApiError::queue_full(st.max_inflight))?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut params = prep.params.clone();
    params.max_tokens = max_tokens;
    let submitted = st.sched.submit(GenRequest {
        prompt,
        params,
        logprobs: prep.logprobs,
        ignore_eos: prep.ignore_eos,
        events: tx,
        arrived,
    });
    if !submitted {
        return Err(ApiError::unavailable("the scheduler has stopped"));
    }
    let h = Header {
        id: format!(
            "{}-{:016x}",
            match ep {
                Endpoint::Completions => "cmpl",
                Endpoint::Chat => "chatcmpl",
            },
            rand::random::<u64>()
        ),
        created: unix_now(),
        model: st.model_id.clone(),
    };
    if prep.stream {
        Ok(stream(ep, h, &prep, rx, slot))
    } else {
        whole(ep, h, &prep, rx, slot).await
    }
}

fn event_error(message: String, shutdown: bool) -> ApiError {
    if shutdown {
        ApiError::unavailable(message)
    } else {
        ApiError::internal(message)
    }
}

/// Wait for the end and answer one JSON object.
async fn whole(
    ep: Endpoint,
    h: Header,
    prep: &Prepared,
    mut rx: UnboundedReceiver<Event>,
    _slot: Slot,
) -> Result<Response, ApiError> {
    let mut text = String::new();
    let mut tokens: Vec<TokenOut> = Vec::new();
    loop {
        match rx.recv().await {
            Some(Event::Delta { text: t, token }) => {
                text.push_str(&t);
                if let Some(tk) = token.filter(|t| t.logprobs.is_some()) {
                    tokens.push(tk);
                }
            }
            Some(Event::Done(f)) => {
                let refs: Vec<&TokenOut> = tokens.iter().collect();
                let v = api::response(ep, &h, &text, &refs, prep.logprobs.is_some(), &f);
                return Ok(Json(v).into_response());
            }
            Some(Event::Error { message, shutdown }) => return Err(event_error(message, shutdown)),
            None => return Err(ApiError::internal("generation ended without a result")),
        }
    }
}

struct StreamState {
    ep: Endpoint,
    h: Header,
    rx: UnboundedReceiver<Event>,
    logprobs: bool,
    include_usage: bool,
    /// Bytes of text sent so far (completions' `text_offset`).
    sent: usize,
    pending: VecDeque<String>,
    done: bool,
    _slot: Slot,
}

/// Server-sent events: one `data: {chunk}` per piece of text, the finish reason, the usage when
/// asked, then `data: [DONE]`.
fn stream(
    ep: Endpoint,
    h: Header,
    prep: &Prepared,
    rx: UnboundedReceiver<Event>,
    slot: Slot,
) -> Response {
    let mut pending = VecDeque::new();
    if ep == Endpoint::Chat {
        pending.push_back(api::chunk(ep, &h, Some(""), true, None, None).to_string());
    }
    let state = StreamState {
        ep,
        h,
        rx,
        logprobs: prep.logprobs.is_some(),
        include_usage: prep.include_usage,
        sent: 0,
        pending,
        done: false,
        _slot: slot,
    };
    let events = futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(d) = s.pending.pop_front() {
                return Some((Ok::<_, Infallible>(SseEvent::default().data(d)), s));
            }
            if s.done {
                return None;
            }
            match s.rx.recv().await {
                Some(Event::Delta { text, token }) => {
                    let tk = token.filter(|t| s.logprobs && t.logprobs.is_some());
                    if text.is_empty() && tk.is_none() {
                        continue;
                    }
                    let lp = tk.as_ref().map(|t| match s.ep {
                        Endpoint::Completions => api::completion_logprobs(&[t], s.sent),
                        Endpoint::Chat => api::chat_logprobs(&[t]),
                    });
                    s.sent += text.len();
                    let c = api::chunk(s.ep, &s.h, Some(&text), false, lp, None);
                    s.pending.push_back(c.to_string());
                }
                Some(Event::Done(f)) => {
                    let text = match s.ep {
                        Endpoint::Completions => Some(""),
                        Endpoint::Chat => None,
                    };
                    let c = api::chunk(s.ep, &s.h, text, false, None, Some(f.reason.as_str()));
                    s.pending.push_back(c.to_string());
                    if s.include_usage {
                        s.pending
                            .push_back(api::usage_chunk(s.ep, &s.h, &f).to_string());
                    }
                    s.pending.push_back("[DONE]".into());
                    s.done = true;
                }
                Some(Event::Error { message, shutdown }) => {
                    s.pending
                        .push_back(event_error(message, shutdown).body().to_string());
                    s.pending.push_back("[DONE]".into());
                    s.done = true;
                }
                None => {
                    let e = ApiError::internal("generation ended without a result");
                    s.pending.push_back(e.body().to_string());
                    s.pending.push_back("[DONE]".into());
                    s.done = true;
                }
            }
        }
    });
    Sse::new(events).into_response()
}
