//! The OpenAI-compatible server over real HTTP on loopback, CPU backend, SmolLM2-135M: the official
//! `openai` Python client, SSE framing byte by byte, 16 concurrent greedy streams equal to solo
//! runs (and again under preemption), a disconnect freeing its pages, the bad-input table, graceful
//! shutdown of the CLI on SIGTERM, and the load generator.
//!
//! Servers run in-process ([`Server::start`]) on ephemeral ports, except where the binary itself is
//! under test (disconnect, SIGTERM), which spawn `rocmforge serve`.

#[path = "cpu_server/client.rs"]
mod client;
mod common;
#[path = "cpu_server/scheduler.rs"]
mod scheduler;

use client::{
    get, metric, metrics, parse_response, post, raw_request, request_bytes, sse_events, stream_text,
};

use rocmforge::model::sampler::SamplingParams;
use rocmforge::model::{DeviceChoice, LoadOptions, Model};
use rocmforge::server::{Server, ServerConfig};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn model_path() -> PathBuf {
    let dir = std::env::var("ROCMFORGE_MODEL_DIR").unwrap_or_else(|_| ".model".into());
    let p = PathBuf::from(dir).join("smollm2-135m-instruct-q4_1.gguf");
    assert!(
        p.exists(),
        "{} missing: run `bash tools/models.sh`",
        p.display()
    );
    p
}

fn load(max_seqs: usize, ctx: usize, kv_tokens: Option<usize>) -> Model {
    Model::load(
        model_path(),
        &LoadOptions {
            device: DeviceChoice::Cpu,
            ctx_size: Some(ctx),
            max_seqs,
            kv_tokens,
            max_batch_tokens: 256,
            ..Default::default()
        },
    )
    .expect("load SmolLM2")
}

fn start(max_seqs: usize, ctx: usize, kv_tokens: Option<usize>, cfg: ServerConfig) -> Server {
    Server::start(
        load(max_seqs, ctx, kv_tokens),
        ServerConfig { port: 0, ..cfg },
    )
    .expect("start server")
}

/// The server most tests share: 16 sequences of 512 tokens.
fn shared() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| start(16, 512, None, ServerConfig::default()))
}

// ---------------------------------------------------------------------------------------------
// Solo references: each prompt generated alone through the library (Model::generate).

const PROMPTS: [&str; 16] = [
    "The capital of France is",
    "Once upon a time, in a small village,",
    "def fibonacci(n):",
    "The best way to learn a new language is",
    "Water boils at",
    "My favourite colour is",
    "In 1969, the first",
    "import numpy as np\n",
    "The quick brown fox",
    "Photosynthesis is the process by which",
    "A haiku about the sea:\n",
    "Q: What is 2 + 2?\nA:",
    "The three primary colors are",
    "To make a cup of tea,",
    "The largest planet in the solar system is",
    "Dear Sir or Madam,",
];
const GEN: usize = 16;

/// (text, generated token count) of every prompt run alone, greedy, GEN tokens.
fn solo() -> &'static Vec<(String, usize)> {
    static R: OnceLock<Vec<(String, usize)>> = OnceLock::new();
    R.get_or_init(|| {
        let mut m = load(1, 512, None);
        let params = SamplingParams {
            max_tokens: GEN,
            ..SamplingParams::greedy()
        };
        PROMPTS
            .iter()
            .map(|p| {
                let ids = m.tokenize(p).unwrap();
                let mut text = String::new();
                let (toks, _, _) = m
                    .generate(&ids, &params, |t| {
                        text.push_str(t);
                        true
                    })
                    .unwrap();
                (text, toks.len())
            })
            .collect()
    })
}

/// Stream every prompt at once (one thread each); (text, finish, usage) per prompt.
fn concurrent_streams(
    addr: SocketAddr,
    prompts: &[&str],
) -> Vec<(String, Option<String>, Option<Value>)> {
    let handles: Vec<_> = prompts
        .iter()
        .map(|p| {
            let body = json!({
                "prompt": p, "max_tokens": GEN, "temperature": 0, "stream": true,
                "stream_options": {"include_usage": true},
            });
            std::thread::spawn(move || {
                let r = post(addr, "/v1/completions", &body);
                assert_eq!(r.status, 200, "{}", r.text());
                stream_text(&sse_events(&r.body))
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn sixteen_concurrent_greedy_streams_equal_solo_runs() {
    let t0 = Instant::now();
    let server = start(16, 512, None, ServerConfig::default());
    let addr = server.addr();
    let refs = solo();
    let t1 = Instant::now();
    let before = metrics(addr);
    let got = concurrent_streams(addr, &PROMPTS);
    let after = metrics(addr);
    for (i, ((text, finish, usage), (want, n))) in got.iter().zip(refs.iter()).enumerate() {
        assert_eq!(
            text, want,
            "prompt {i} ({:?}): batched output differs from the solo run",
            PROMPTS[i]
        );
        let usage = usage.as_ref().expect("usage chunk");
        assert_eq!(
            usage["completion_tokens"].as_u64(),
            Some(*n as u64),
            "prompt {i}"
        );
        let f = finish.as_deref().unwrap();
        assert_eq!(f, if *n == GEN { "length" } else { "stop" }, "prompt {i}");
    }
    // they really ran together: far fewer steps than tokens
    let steps = metric(&after, "rocmforge_engine_steps_total")
        - metric(&before, "rocmforge_engine_steps_total");
    let tokens: usize = refs.iter().map(|r| r.1).sum();
    assert!(
        steps <= (GEN + 8) as f64,
        "{steps} steps for {tokens} tokens of 16 streams: not batched"
    );
    eprintln!(
        "16 streams: solo references {:.1} s, concurrent {:.1} s in {steps} steps",
        (t1 - t0).as_secs_f64(),
        t1.elapsed().as_secs_f64()
    );
}

#[test]
fn preemption_recomputes_without_changing_outputs() {
    // 5 pages of 16 tokens for 4 sequences that grow to 2 pages each: someone must be preempted.
    let server = start(4, 512, Some(80), ServerConfig::default());
    let addr = server.addr();
    let refs = solo();
    let pick = [0usize, 4, 8, 13];
    let prompts: Vec<&str> = pick.iter().map(|&i| PROMPTS[i]).collect();
    let got = concurrent_streams(addr, &prompts);
    for (k, &i) in pick.iter().enumerate() {
        assert_eq!(
            got[k].0, refs[i].0,
            "prompt {i}: output changed by preemption"
        );
    }
    // the last chunk reaches the client before the scheduler's next step frees the pages
    wait_for("the pages to be freed", 10, || {
        metric(&metrics(addr), "rocmforge_kv_pages_used") == 0.0
    });
    let m = metrics(addr);
    assert!(
        metric(&m, "rocmforge_preemptions_total") > 0.0,
        "no preemption happened:\n{m}"
    );
    assert_eq!(metric(&m, "rocmforge_kv_pages_used"), 0.0);
    assert!(!m.contains("reason=\"error\""), "a request failed:\n{m}");
}

// ---------------------------------------------------------------------------------------------

/// The official `openai` client: completions and chat, whole and streamed; prints JSON.
const OPENAI_SCRIPT: &str = include_str!("cpu_server/openai_client.py");

#[test]
fn openai_python_client_completions_and_chat() {
    let addr = shared().addr();
    let o = Command::new("python3")
        .args(["-c", OPENAI_SCRIPT])
        .env("BASE_URL", format!("http://{addr}/v1"))
        .output()
        .expect("python3");
    assert!(
        o.status.success(),
        "openai client script failed (pip install openai):\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["model"], "smollm2-135m-instruct-q4_1");
    let c = &v["completion"];
    assert!(c["text"].as_str().unwrap().contains("Paris"), "{c}");
    assert_eq!(c["finish"], "length");
    assert_eq!(c["completion_tokens"], 8);
    assert_eq!(c["prompt_tokens"], 5);
    assert_eq!(
        v["completion_stream"]["text"], c["text"],
        "streamed text differs"
    );
    assert_eq!(v["completion_stream"]["finish"], "length");
    assert_eq!(v["completion_stream"]["completion_tokens"], 8);
    let ch = &v["chat"];
    assert!(!ch["text"].as_str().unwrap().is_empty());
    assert_eq!(ch["role"], "assistant");
    let lps = ch["logprobs"].as_array().unwrap();
    assert_eq!(lps.len() as u64, ch["completion_tokens"].as_u64().unwrap());
    for t in lps {
        let lp = t[1].as_f64().unwrap();
        assert!(lp <= 0.0 && lp > -100.0, "{t}");
        assert_eq!(t[2], 2);
    }
    assert_eq!(
        v["chat_stream"]["text"], ch["text"],
        "streamed chat differs"
    );
    assert_eq!(v["chat_stream"]["finish"], ch["finish"]);
    assert_eq!(v["chat_stream"]["roles"], json!(["assistant"]));
    assert_eq!(v["unknown_model"], "NotFoundError");
}

#[test]
fn sse_framing_is_exact_and_matches_the_whole_response() {
    let addr = shared().addr();
    for (path, body) in [
        (
            "/v1/completions",
            json!({"prompt": "Water boils at", "max_tokens": 8, "temperature": 0}),
        ),
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8, "temperature": 0}),
        ),
    ] {
        let whole = post(addr, path, &body);
        assert_eq!(whole.status, 200, "{}", whole.text());
        assert!(whole
            .header("content-type")
            .unwrap()
            .starts_with("application/json"));
        let w = whole.json();
        let mut sb = body.clone();
        sb["stream"] = json!(true);
        sb["stream_options"] = json!({"include_usage": true});
        let r = post(addr, path, &sb);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/event-stream"));
        assert_eq!(r.header("transfer-encoding"), Some("chunked"));
        assert!(
            r.raw_body.ends_with(b"data: [DONE]\n\n\r\n0\r\n\r\n"),
            "{:?}",
            String::from_utf8_lossy(&r.raw_body)
        );
        let events = sse_events(&r.body);
        let chunks: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        let id = chunks[0]["id"].as_str().unwrap();
        let chat = path.contains("chat");
        for c in &chunks {
            assert_eq!(c["id"], id, "one id per stream");
            assert_eq!(
                c["object"],
                if chat {
                    "chat.completion.chunk"
                } else {
                    "text_completion"
                }
            );
            assert_eq!(c["model"], "smollm2-135m-instruct-q4_1");
            assert!(c["created"].as_u64().unwrap() > 1_600_000_000);
        }
        if chat {
            assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        }
        // the finish chunk, then the usage chunk with no choices
        let n = chunks.len();
        assert_eq!(chunks[n - 1]["choices"], json!([]));
        // (cached_tokens may differ: the second run reuses the first one's prompt pages)
        for k in ["prompt_tokens", "completion_tokens", "total_tokens"] {
            assert_eq!(chunks[n - 1]["usage"][k], w["usage"][k], "{k}");
        }
        assert_eq!(
            chunks[n - 2]["choices"][0]["finish_reason"],
            w["choices"][0]["finish_reason"]
        );
        for c in &chunks[..n - 2] {
            assert!(c["choices"][0]["finish_reason"].is_null());
        }
        let (text, _, _) = stream_text(&events);
        let want = if chat {
            w["choices"][0]["message"]["content"].as_str().unwrap()
        } else {
            w["choices"][0]["text"].as_str().unwrap()
        };
        assert_eq!(
            text, want,
            "{path}: streamed text differs from the whole response"
        );
    }
    // logprobs on a stream: one chunk per token, each with its log-probability
    let r = post(
        addr,
        "/v1/completions",
        &json!({"prompt": "Water boils at", "max_tokens": 4, "temperature": 0, "stream": true, "logprobs": 3}),
    );
    let events = sse_events(&r.body);
    let with_lp: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .filter(|c| !c["choices"][0]["logprobs"].is_null())
        .collect();
    assert_eq!(with_lp.len(), 4);
    for c in with_lp {
        let l = &c["choices"][0]["logprobs"];
        assert_eq!(l["tokens"].as_array().unwrap().len(), 1);
        assert_eq!(l["top_logprobs"][0].as_object().unwrap().len(), 3);
        // greedy: the chosen token is the most likely one
        let top_max = l["top_logprobs"][0]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_f64().unwrap())
            .fold(f64::MIN, f64::max);
        assert!((l["token_logprobs"][0].as_f64().unwrap() - top_max).abs() < 1e-6);
    }
}

#[test]
fn prefix_reuse_shows_in_usage_and_metrics() {
    let addr = shared().addr();
    let system = "You are a helpful assistant who answers in one short sentence. Always be polite, precise and kind to the user.";
    let body = |q: &str| json!({"messages": [{"role": "system", "content": system}, {"role": "user", "content": q}], "max_tokens": 2, "temperature": 0});
    let before = metric(&metrics(addr), "rocmforge_prefix_cache_tokens_reused_total");
    let a = post(addr, "/v1/chat/completions", &body("What is the sun?"));
    assert_eq!(a.status, 200);
    let b = post(addr, "/v1/chat/completions", &body("What is the moon?")).json();
    let cached = b["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap();
    assert!(cached >= 16, "the shared system prompt was not reused: {b}");
    let after = metric(&metrics(addr), "rocmforge_prefix_cache_tokens_reused_total");
    assert!(after - before >= cached as f64);
}

#[test]
fn metrics_are_prometheus_text() {
    let addr = shared().addr();
    let r = post(
        addr,
        "/v1/completions",
        &json!({"prompt": "Hello", "max_tokens": 3, "temperature": 0}),
    );
    assert_eq!(r.status, 200);
    let m = metrics(addr);
    for name in [
        "rocmforge_requests_total{endpoint=\"/v1/completions\",status=\"200\"}",
        "rocmforge_time_to_first_token_seconds_count",
        "rocmforge_inter_token_latency_seconds_count",
        "rocmforge_generation_tokens_total",
        "rocmforge_prompt_tokens_total",
        "rocmforge_requests_running",
        "rocmforge_requests_waiting",
        "rocmforge_kv_pages_used",
        "rocmforge_kv_pages_free",
        "rocmforge_kernels_compiled",
    ] {
        assert!(metric(&m, name) >= 0.0);
    }
    assert!(metric(&m, "rocmforge_time_to_first_token_seconds_count") >= 1.0);
    assert!(metric(&m, "rocmforge_generation_tokens_total") >= 3.0);
    assert!(m.contains("rocmforge_time_to_first_token_seconds_bucket{le=\"+Inf\"}"));
    for line in m.lines().filter(|l| !l.starts_with('#')) {
        let (_, v) = line.rsplit_once(' ').unwrap();
        assert!(v.parse::<f64>().is_ok(), "bad sample line {line:?}");
    }
}

// ---------------------------------------------------------------------------------------------

#[test]
fn bad_inputs_get_openai_errors_and_the_server_keeps_serving() {
    let key = "sekret";
    let server = start(
        1,
        256,
        None,
        ServerConfig {
            api_key: Some(key.into()),
            max_queue: 0,
            body_limit: 64 << 10,
            ..Default::default()
        },
    );
    let addr = server.addr();
    let auth = format!("Bearer {key}");
    let send = |path: &str, body: &[u8], auth_header: Option<&str>| {
        let mut h = vec![("Content-Type", "application/json")];
        if let Some(a) = auth_header {
            h.push(("Authorization", a));
        }
        raw_request(addr, &request_bytes("POST", path, &h, body))
    };
    let c = "/v1/completions";
    let ch = "/v1/chat/completions";
    let long: Vec<u32> = (0..300).map(|i| 1000 + i).collect();
    let table: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        ("no key", c, br#"{"prompt":"x","max_tokens":1}"#.to_vec(), 401, ""),
        ("wrong key", c, br#"{"prompt":"x","max_tokens":1}"#.to_vec(), 401, "wrong"),
        ("malformed JSON", c, b"{\"prompt\": \"x\",".to_vec(), 400, key),
        ("not an object", c, b"[1,2]".to_vec(), 400, key),
        ("prompt of the wrong type", c, br#"{"prompt":5}"#.to_vec(), 400, key),
        ("max_tokens a string", c, br#"{"prompt":"x","max_tokens":"ten"}"#.to_vec(), 400, key),
        ("negative max_tokens", c, br#"{"prompt":"x","max_tokens":-1}"#.to_vec(), 400, key),
        ("zero max_tokens", c, br#"{"prompt":"x","max_tokens":0}"#.to_vec(), 400, key),
        ("huge max_tokens", c, br#"{"prompt":"x","max_tokens":1000000000000000}"#.to_vec(), 400, key),
        ("fractional max_tokens", c, br#"{"prompt":"x","max_tokens":1.5}"#.to_vec(), 400, key),
        ("negative temperature", c, br#"{"prompt":"x","temperature":-1}"#.to_vec(), 400, key),
        ("huge temperature", c, br#"{"prompt":"x","temperature":1e300}"#.to_vec(), 400, key),
        ("top_p 0", c, br#"{"prompt":"x","top_p":0}"#.to_vec(), 400, key),
        ("min_p 2", c, br#"{"prompt":"x","min_p":2}"#.to_vec(), 400, key),
        ("logprobs 50", c, br#"{"prompt":"x","logprobs":50}"#.to_vec(), 400, key),
        ("top_logprobs 21", ch, br#"{"messages":[{"role":"user","content":"x"}],"logprobs":true,"top_logprobs":21}"#.to_vec(), 400, key),
        ("n 2", c, br#"{"prompt":"x","n":2}"#.to_vec(), 400, key),
        ("stop a number", c, br#"{"prompt":"x","stop":3}"#.to_vec(), 400, key),
        ("empty stop string", c, br#"{"prompt":"x","stop":[""]}"#.to_vec(), 400, key),
        ("empty prompt list", c, br#"{"prompt":[]}"#.to_vec(), 400, key),
        ("two prompts", c, br#"{"prompt":["a","b"]}"#.to_vec(), 400, key),
        ("token id outside the vocabulary", c, br#"{"prompt":[1,999999]}"#.to_vec(), 400, key),
        ("prompt longer than the context", c, serde_json::to_vec(&json!({"prompt": long})).unwrap(), 400, key),
        ("missing prompt", c, br#"{"max_tokens":1}"#.to_vec(), 400, key),
        ("empty messages", ch, br#"{"messages":[]}"#.to_vec(), 400, key),
        ("messages not a list", ch, br#"{"messages":"hi"}"#.to_vec(), 400, key),
        ("message without role", ch, br#"{"messages":[{"content":"hi"}]}"#.to_vec(), 400, key),
        ("image content", ch, br#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}"#.to_vec(), 400, key),
        ("invalid UTF-8", c, b"{\"prompt\": \"\xff\xfe\"}".to_vec(), 400, key),
        ("unknown model", c, br#"{"model":"gpt-9","prompt":"x","max_tokens":1}"#.to_vec(), 404, key),
        ("unknown route", "/v1/engines", b"{}".to_vec(), 404, key),
        ("unknown fields are ignored", c, br#"{"prompt":"x","max_tokens":1,"frobnicate":{"a":[1]},"user":"u"}"#.to_vec(), 200, key),
    ];
    for (what, path, body, status, k) in &table {
        let a = if k.is_empty() {
            None
        } else {
            Some(format!("Bearer {k}"))
        };
        let r = send(path, body, a.as_deref());
        assert_eq!(r.status, *status, "{what}: {}", r.text());
        if *status != 200 {
            let e = r.json();
            let msg = e["error"]["message"].as_str().unwrap_or("");
            assert!(
                !msg.is_empty() && e["error"]["type"].is_string(),
                "{what}: not OpenAI's error shape: {e}"
            );
        }
    }
    // the context error says the numbers
    let r = send(
        c,
        br#"{"prompt":"x","max_tokens":1000000000000000}"#,
        Some(&auth),
    );
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("256") && msg.contains("1000000000000000"),
        "{msg}"
    );
    // 413 from the Content-Length alone
    let r = raw_request(
        addr,
        format!("POST {c} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", 1 << 20).as_bytes(),
    );
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("65536"));
    // 413 from a chunked body that grows past the limit
    let big = vec![b' '; 70 << 10];
    let mut req = format!("POST {c} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").into_bytes();
    for part in big.chunks(8 << 10) {
        req.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        req.extend_from_slice(part);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(raw_request(addr, &req).status, 413);
    // 405
    let r = raw_request(
        addr,
        &request_bytes("GET", c, &[("Authorization", &auth)], b""),
    );
    assert_eq!(r.status, 405);
    assert!(r.json()["error"]["message"].is_string());
    // /v1/models needs the key too; /health does not
    assert_eq!(get(addr, "/v1/models").status, 401);
    // queue full: one sequence, no queue; a running stream takes the only place
    let mut s = TcpStream::connect(addr).unwrap();
    let body = serde_json::to_vec(
        &json!({"prompt": "Once upon a time", "max_tokens": 200, "temperature": 0, "stream": true}),
    )
    .unwrap();
    s.write_all(&request_bytes(
        "POST",
        c,
        &[("Authorization", &auth)],
        &body,
    ))
    .unwrap();
    let mut first = [0u8; 256];
    let n = s.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    let r = send(c, br#"{"prompt":"x","max_tokens":1}"#, Some(&auth));
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    drop(s);
    // and after all of that it still serves
    let h = get(addr, "/health");
    assert_eq!(h.status, 200);
    assert_eq!(h.json()["status"], "ok");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = send(
            c,
            br#"{"prompt":"The capital of France is","max_tokens":2,"temperature":0}"#,
            Some(&auth),
        );
        if r.status == 200 {
            assert_eq!(r.json()["usage"]["completion_tokens"], 2);
            break;
        }
        // the dropped stream's place frees once the scheduler notices
        assert_eq!(r.status, 429, "{}", r.text());
        assert!(
            Instant::now() < deadline,
            "the cancelled stream never freed its place"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let m = metrics(addr);
    assert!(
        metric(
            &m,
            "rocmforge_requests_total{endpoint=\"/v1/completions\",status=\"400\"}"
        ) >= 20.0
    );
    assert!(
        metric(
            &m,
            "rocmforge_requests_total{endpoint=\"other\",status=\"404\"}"
        ) >= 1.0
    );
}

// ---------------------------------------------------------------------------------------------
// The CLI binary.

struct Cli {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_cli(extra: &[&str]) -> Cli {
    let mut child = Command::new(common::cli_bin())
        .arg("serve")
        .arg(model_path())
        .args([
            "--device",
            "cpu",
            "--port",
            "0",
            "--ctx-size",
            "512",
            "--max-seqs",
            "4",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn rocmforge serve");
    let out = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .parse()
        .unwrap();
    Cli { child, addr }
}

/// Open a stream and read until `n` SSE records have arrived; returns the socket.
fn stream_until(addr: SocketAddr, body: &Value, n: usize) -> (TcpStream, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let b = serde_json::to_vec(body).unwrap();
    s.write_all(&request_bytes("POST", "/v1/completions", &[], &b))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.windows(6).filter(|w| w == b"data: ").count() < n {
        let k = s.read(&mut buf).unwrap();
        assert!(
            k > 0,
            "stream ended early: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..k]);
    }
    (s, got)
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn disconnect_mid_stream_frees_its_pages() {
    let cli = spawn_cli(&[]);
    let addr = cli.addr;
    let m0 = metrics(addr);
    assert_eq!(metric(&m0, "rocmforge_kv_pages_used"), 0.0);
    // a prompt of 40+ tokens and a long generation: several pages while it runs
    let prompt = "The history of the city begins in the ancient world, when traders from the coast built a small harbour, and over the centuries it grew into a busy port. Merchants, sailors and craftsmen came from every land around the sea, and the town walls were rebuilt three times as it grew into";
    let (s, _) = stream_until(
        addr,
        &json!({"prompt": prompt, "max_tokens": 400, "temperature": 0, "stream": true}),
        3,
    );
    let m1 = metrics(addr);
    assert_eq!(metric(&m1, "rocmforge_requests_running"), 1.0);
    let used = metric(&m1, "rocmforge_kv_pages_used");
    assert!(used >= 3.0, "{used} pages in use while streaming");
    drop(s);
    let t = Instant::now();
    wait_for("the pages to be freed", 30, || {
        let m = metrics(addr);
        metric(&m, "rocmforge_kv_pages_used") == 0.0
            && metric(&m, "rocmforge_requests_running") == 0.0
    });
    let m2 = metrics(addr);
    assert_eq!(metric(&m2, "rocmforge_cancelled_total"), 1.0);
    let generated = metric(&m2, "rocmforge_generation_tokens_total");
    assert!(
        generated < 100.0,
        "{generated} tokens generated: the stream was not cut short"
    );
    eprintln!(
        "pages freed {:.0} ms after the disconnect",
        t.elapsed().as_secs_f64() * 1e3
    );
    // the server is fine afterwards
    assert_eq!(get(addr, "/health").status, 200);
}

#[test]
fn sigterm_finishes_streams_refuses_new_ones_and_exits_zero() {
    let mut cli = spawn_cli(&["--shutdown-grace", "60"]);
    let addr = cli.addr;
    let (mut s, mut got) = stream_until(
        addr,
        &json!({"prompt": "Once upon a time", "max_tokens": 12, "temperature": 0, "stream": true}),
        1,
    );
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(cli.child.id() as i32, libc::SIGTERM) };
    assert_eq!(rc, 0);
    std::thread::sleep(Duration::from_millis(300));
    // new work is refused: the listener is closed (or a 503 if a connection slipped in)
    if let Ok(mut c) = TcpStream::connect(addr) {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = c.write_all(&request_bytes("GET", "/health", &[], b""));
        let mut r = Vec::new();
        let _ = c.read_to_end(&mut r);
        assert!(
            !String::from_utf8_lossy(&r).starts_with("HTTP/1.1 200"),
            "served after SIGTERM"
        );
    }
    // the running stream ends normally
    s.read_to_end(&mut got).unwrap();
    let resp = parse_response(&got);
    let (_, finish, _) = stream_text(&sse_events(&resp.body));
    assert_eq!(finish.as_deref(), Some("length"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = cli.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "server still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
}

// ---------------------------------------------------------------------------------------------

#[test]
fn loadgen_reports_json() {
    let addr = shared().addr();
    let o = Command::new("python3")
        .args([
            "tools/loadgen.py",
            "--url",
            &format!("http://{addr}"),
            "--concurrency",
            "2",
            "--requests",
            "3",
            "--prompt-tokens",
            "16:32",
            "--gen-tokens",
            "4:6",
            "--max-time",
            "120",
        ])
        .output()
        .expect("python3");
    assert!(
        o.status.success(),
        "loadgen failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let run = &v["runs"][0];
    assert_eq!(run["concurrency"], 2);
    assert_eq!(run["requests"], 3);
    assert_eq!(run["failed"], 0, "{v}");
    let gen = run["generated_tokens"].as_u64().unwrap();
    assert!(
        (12..=18).contains(&gen),
        "{gen} tokens for 3 requests of 4-6"
    );
    assert!(run["gen_tok_s"].as_f64().unwrap() > 0.0);
    for k in ["ttft_ms", "itl_ms"] {
        let p50 = run[k]["p50"].as_f64().unwrap();
        let p99 = run[k]["p99"].as_f64().unwrap();
        assert!(p50 > 0.0 && p99 >= p50, "{k}: {}", run[k]);
    }
}
