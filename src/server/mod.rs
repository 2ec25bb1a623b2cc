//! An OpenAI-compatible HTTP server (tokio + axum) over one model, with a continuous-batching
//! scheduler.
//!
//! Threads: the model's [`crate::model::engine::Engine`] lives on one scheduler thread
//! ([`scheduler`]); the HTTP handlers ([`http`]) run on a small tokio runtime, tokenize prompts,
//! send requests to the scheduler over a channel and turn the token events they get back into
//! OpenAI responses. A client that goes away drops its receiver, and the scheduler frees its
//! sequence before the next step.
//!
//! Endpoints: `GET /v1/models`, `POST /v1/completions`, `POST /v1/chat/completions` (whole or
//! streamed as server-sent events), `GET /health`, `GET /metrics` (Prometheus text, [`metrics`]).
//! Shutdown (SIGINT/SIGTERM, or [`Server::shutdown`]): stop accepting, let running requests finish
//! for a grace period, end the rest with an error event, return.

pub mod api;
pub mod error;
pub mod http;
pub mod metrics;
pub mod scheduler;

use crate::error::{Error, Result};
use crate::model::{LoadOptions, Model};
use http::AppState;
use metrics::Metrics;
use serde_json::json;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::watch;

/// How the server listens and what it accepts.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub host: String,
    /// 0 = an ephemeral port ([`Server::addr`] says which).
    pub port: u16,
    /// Required as `Authorization: Bearer KEY` on `/v1/*` when set.
    pub api_key: Option<String>,
    /// The name clients pass as `model` (default: the file name without `.gguf`).
    pub model_id: Option<String>,
    /// Requests queued beyond the engine's `max_seqs` before new ones get 429.
    pub max_queue: usize,
    /// Largest request body in bytes (413 beyond).
    pub body_limit: usize,
    /// How long running requests may continue after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Shut down on SIGINT and SIGTERM.
    pub handle_signals: bool,
    /// Tokio worker threads for HTTP.
    pub http_threads: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 8080,
            api_key: None,
            model_id: None,
            max_queue: 256,
            body_limit: 8 << 20,
            shutdown_grace: Duration::from_secs(30),
            handle_signals: false,
            http_threads: 4,
        }
    }
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    state: Arc<AppState>,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<Result<()>>>,
}

fn server_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::op("server", format!("{what}: {e}"))
}

/// The file name without `.gguf`.
fn default_model_id(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .map(|n| n.strip_suffix(".gguf").map(str::to_string).unwrap_or(n))
        .unwrap_or_else(|| "model".into())
}

impl Server {
    /// Serve `model`: bind, start the scheduler thread and the HTTP runtime, return at once.
    pub fn start(model: Model, cfg: ServerConfig) -> Result<Server> {
        let Model {
            path,
            engine,
            tokenizer,
            chat_template,
            load_stats,
        } = model;
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let model_id = cfg
            .model_id
            .clone()
            .unwrap_or_else(|| default_model_id(&path));
        let limits = engine.limits;
        let meta = json!({
            "name": engine.config.name,
            "arch": engine.config.arch,
            "file": file,
            "backend": engine.backend_name(),
            "n_ctx": limits.ctx_size,
            "n_vocab": engine.config.vocab_size,
            "max_seqs": limits.max_seqs,
            "max_batch_tokens": limits.max_batch_tokens,
            "kv_pages": limits.num_pages,
            "kv_page_size": limits.page_size,
        });
        let vocab = engine.config.vocab_size;
        let metrics = Arc::new(Metrics::new(
            load_stats.kernels_compiled,
            load_stats.kernels_cached,
        ));
        metrics.set_load(&load_stats);
        let tokenizer = Arc::new(tokenizer);

        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cfg.http_threads.max(1))
            .thread_name("rocmforge-http")
            .enable_all()
            .build()
            .map_err(|e| server_err("starting the HTTP runtime", e))?;
        let std_listener = std::net::TcpListener::bind((cfg.host.as_str(), cfg.port))
            .map_err(|e| server_err(&format!("binding {}:{}", cfg.host, cfg.port), e))?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| server_err("listener", e))?;
        let addr = std_listener
            .local_addr()
            .map_err(|e| server_err("listener address", e))?;
        // Listener and signal handlers are registered here, before start returns: a signal sent
        // once the caller knows the address is always ours.
        let (listener, signals) = {
            let _g = rt.enter();
            let l = tokio::net::TcpListener::from_std(std_listener)
                .map_err(|e| server_err("listener", e))?;
            let s = if cfg.handle_signals {
                Some(Signals::new()?)
            } else {
                None
            };
            (l, s)
        };

        let (sched, sched_join) = scheduler::spawn(engine, tokenizer.clone(), metrics.clone())?;
        let aliases = if file != model_id { vec![file] } else { vec![] };
        let state = Arc::new(AppState {
            model_id,
            aliases,
            tokenizer,
            template: chat_template.map(Arc::new),
            sched,
            metrics,
            limits,
            vocab,
            api_key: cfg.api_key.clone(),
            max_inflight: limits.max_seqs + cfg.max_queue,
            inflight: Arc::new(AtomicUsize::new(0)),
            draining: AtomicBool::new(false),
            body_limit: cfg.body_limit,
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            meta,
        });
        let (stop, stop_rx) = watch::channel(false);
        let st = state.clone();
        let grace = cfg.shutdown_grace;
        let thread = std::thread::Builder::new()
            .name("rocmforge-http-main".into())
            .spawn(move || -> Result<()> {
                let r = rt.block_on(serve(listener, st.clone(), stop_rx, signals, grace));
                st.sched.shutdown();
                let _ = sched_join.join();
                r
            })
            .map_err(|e| server_err("starting the HTTP thread", e))?;
        Ok(Server {
            addr,
            state,
            stop,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// The model name clients use.
    pub fn model_id(&self) -> &str {
        &self.state.model_id
    }
    pub fn metrics(&self) -> &Metrics {
        &self.state.metrics
    }
    /// Begin a graceful shutdown (as SIGTERM does).
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }
    /// Wait until the server has stopped (after a signal or [`Server::shutdown`]).
    pub fn wait(mut self) -> Result<()> {
        self.join()
    }
    fn join(&mut self) -> Result<()> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| server_err("HTTP thread", "panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
        let _ = self.join();
    }
}

/// SIGINT and SIGTERM.
struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                int: signal(SignalKind::interrupt())
                    .map_err(|e| server_err("SIGINT handler", e))?,
                term: signal(SignalKind::terminate())
                    .map_err(|e| server_err("SIGTERM handler", e))?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.int.recv() => "SIGINT",
                _ = self.term.recv() => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    st: Arc<AppState>,
    mut stop: watch::Receiver<bool>,
    mut signals: Option<Signals>,
    grace: Duration,
) -> Result<()> {
    let app = http::router(st.clone());
    let st2 = st.clone();
    let shutdown = async move {
        let why = {
            let asked = async {
                // a dropped handle counts as a request to stop
                while !*stop.borrow_and_update() {
                    if stop.changed().await.is_err() {
                        break;
                    }
                }
                "shutdown requested"
            };
            match signals.as_mut() {
                Some(s) => tokio::select! {
                    w = asked => w,
                    w = s.recv() => w,
                },
                None => asked.await,
            }
        };
        if let Some(mut s) = signals {
            // a second signal ends the running requests at once
            let st3 = st2.clone();
            tokio::spawn(async move {
                let w = s.recv().await;
                tracing::warn!("{w} again: cancelling the running requests");
                st3.sched.cancel_all("the server is shutting down");
            });
        }
        st2.draining.store(true, Ordering::Release);
        let running = st2.inflight.load(Ordering::Acquire);
        tracing::warn!(
            "{why}: no new connections; {running} requests in flight get up to {} s to finish",
            grace.as_secs_f64()
        );
        let st3 = st2.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            st3.sched.cancel_all("the server is shutting down");
        });
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| server_err("serving HTTP", e))
}

/// What `rocmforge serve` needs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub model: PathBuf,
    pub load: LoadOptions,
    pub server: ServerConfig,
}

/// `rocmforge serve`: load, print the address, serve until SIGINT/SIGTERM, exit 0.
pub fn serve_cli(o: ServeOptions) -> Result<i32> {
    // Writes to a socket whose client has gone must fail with EPIPE, not kill the process (the
    // CLI's main restores the default SIGPIPE action for pipelines).
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let model = Model::load(&o.model, &o.load)?;
    let backend = model.engine.backend_name();
    let limits = model.engine.limits;
    let warmup = (model.load_stats.kernels > 0).then(|| model.load_stats.warmup_line());
    let server = Server::start(
        model,
        ServerConfig {
            handle_signals: true,
            ..o.server
        },
    )?;
    use std::io::Write;
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "rocmforge serve: listening on http://{} (model `{}` on {backend}; {} sequences, context {} tokens, KV {} pages x {} tokens, {} tokens per step)",
        server.addr(),
        server.model_id(),
        limits.max_seqs,
        limits.ctx_size,
        limits.num_pages,
        limits.page_size,
        limits.max_batch_tokens
    );
    if let Some(w) = warmup {
        let _ = writeln!(out, "rocmforge serve: {w}");
    }
    let _ = out.flush();
    server.wait()?;
    let _ = writeln!(out, "rocmforge serve: stopped");
    let _ = out.flush();
    Ok(0)
}
