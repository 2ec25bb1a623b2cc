#!/usr/bin/env python3
"""Bounded loopback load generator for OpenAI-compatible servers: `rocmforge serve` and llama.cpp's
`llama-server` alike. Python standard library only (http.client in threads).

Each run keeps C streams in flight (C = each value of --concurrency) until --requests requests have
been sent or --max-time seconds have passed. Every request is a streamed /v1/completions call whose
prompt is a list of random token ids (a length drawn from --prompt-tokens, so both servers see the
same token counts; seeded, so both see the same prompts) and whose max_tokens is drawn from
--gen-tokens, with ignore_eos so every request generates exactly that many tokens.

Prints one JSON object: per run, aggregate generated tokens per second (all generated tokens over
the run's wall time), time to first token and inter-token latency (gaps between streamed chunks)
p50/p99, time per output token per request, failures and the first few errors.

    python3 tools/loadgen.py --url http://127.0.0.1:8080 --concurrency 1,8,32,128

Exit status 0 when every request succeeded, 2 when some failed (the JSON says which), 1 on bad
arguments or an unreachable server.
"""

import argparse
import http.client
import json
import random
import re
import sys
import threading
import time
import urllib.parse

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
# a chunk whose choice has non-empty text (both servers write compact JSON; spaces allowed anyway)
NONEMPTY_TEXT = re.compile(rb'"text"\s*:\s*"(?!")')
USAGE_OR_ERROR = re.compile(rb'"(usage"\s*:\s*\{|error")')


def percentile(xs, p):
    """Linear-interpolated percentile (p in 0..100) of a list; None when empty."""
    if not xs:
        return None
    s = sorted(xs)
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary_ms(xs):
    if not xs:
        return {"p50": None, "p99": None, "mean": None, "max": None, "n": 0}
    return {
        "p50": round(percentile(xs, 50) * 1e3, 3),
        "p99": round(percentile(xs, 99) * 1e3, 3),
        "mean": round(sum(xs) / len(xs) * 1e3, 3),
        "max": round(max(xs) * 1e3, 3),
        "n": len(xs),
    }


def parse_range(s):
    a, _, b = s.partition(":")
    lo, hi = int(a), int(b or a)
    if lo < 1 or hi < lo:
        raise argparse.ArgumentTypeError(f"bad range {s!r}: expected LO:HI with 1 <= LO <= HI")
    return lo, hi


class Target:
    def __init__(self, url, api_key, timeout):
        u = urllib.parse.urlparse(url)
        if u.scheme != "http" or not u.hostname:
            raise SystemExit(f"loadgen: --url must be http://HOST:PORT, got {url!r}")
        if u.hostname not in LOOPBACK:
            raise SystemExit(f"loadgen: refusing non-loopback host {u.hostname!r} (loopback only)")
        self.host = u.hostname
        self.port = u.port or 80
        self.timeout = timeout
        self.headers = {"Content-Type": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"

    def conn(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def get_json(self, path):
        c = self.conn()
        try:
            c.request("GET", path, headers=self.headers)
            r = c.getresponse()
            body = r.read()
            if r.status != 200:
                raise RuntimeError(f"GET {path}: HTTP {r.status}: {body[:200]!r}")
            return json.loads(body)
        finally:
            c.close()


def one_request(t, model, prompt, gen, temperature):
    """Stream one completion. Returns a dict with ok, ttft, gaps, tokens (or error)."""
    body = {
        "prompt": prompt,
        "max_tokens": gen,
        "temperature": temperature,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": True,
    }
    if model:
        body["model"] = model
    c = t.conn()
    t0 = time.perf_counter()
    try:
        c.request("POST", "/v1/completions", body=json.dumps(body), headers=t.headers)
        r = c.getresponse()
        if r.status != 200:
            return {"ok": False, "error": f"HTTP {r.status}: {r.read()[:300]!r}"}
        arrivals = []
        usage_tokens = None
        done = False
        while True:
            line = r.readline()
            if not line:
                break
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                done = True
                break
            now = time.perf_counter()
            # Token chunks are recognised without parsing them (at 128 streams the client would
            # otherwise spend its time in json.loads); usage and error chunks are parsed.
            if USAGE_OR_ERROR.search(data):
                obj = json.loads(data)
                if obj.get("error"):
                    return {"ok": False, "error": f"error event: {json.dumps(obj)[:300]}"}
                u = obj.get("usage")
                if u and u.get("completion_tokens") is not None:
                    usage_tokens = u["completion_tokens"]
                if any(ch.get("text") for ch in obj.get("choices") or []):
                    arrivals.append(now)
            elif NONEMPTY_TEXT.search(data):
                arrivals.append(now)
        end = time.perf_counter()
        if not done:
            return {"ok": False, "error": "stream ended without data: [DONE]"}
        if not arrivals:
            return {"ok": False, "error": "no tokens streamed"}
        tokens = usage_tokens if usage_tokens is not None else len(arrivals)
        return {
            "ok": True,
            "ttft": arrivals[0] - t0,
            "gaps": [b - a for a, b in zip(arrivals, arrivals[1:])],
            "tpot": (arrivals[-1] - arrivals[0]) / (tokens - 1) if tokens > 1 else None,
            "tokens": tokens,
            "chunks": len(arrivals),
            "prompt_tokens": len(prompt),
            "latency": end - t0,
        }
    except (OSError, http.client.HTTPException, ValueError) as e:
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}
    finally:
        c.close()


def run(t, model, conc, n_requests, max_time, plens, glens, vocab_lo, vocab_hi, temperature, seed):
    rng = random.Random(seed * 1000003 + conc)
    jobs = []
    for _ in range(n_requests):
        p = rng.randint(*plens)
        jobs.append(([rng.randrange(vocab_lo, vocab_hi) for _ in range(p)], rng.randint(*glens)))
    lock = threading.Lock()
    results = []
    next_job = [0]
    start = time.perf_counter()
    cpu0 = time.process_time()
    deadline = start + max_time

    def worker():
        while True:
            with lock:
                if next_job[0] >= len(jobs) or time.perf_counter() >= deadline:
                    return
                prompt, gen = jobs[next_job[0]]
                next_job[0] += 1
            res = one_request(t, model, prompt, gen, temperature)
            with lock:
                results.append(res)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(conc)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - start
    client_cpu = time.process_time() - cpu0
    ok = [r for r in results if r["ok"]]
    failed = [r for r in results if not r["ok"]]
    gen_tokens = sum(r["tokens"] for r in ok)
    gaps = [g for r in ok for g in r["gaps"]]
    return {
        "concurrency": conc,
        "requests": len(results),
        "completed": len(ok),
        "failed": len(failed),
        "not_sent": len(jobs) - len(results),
        "wall_s": round(wall, 3),
        "prompt_tokens": sum(r["prompt_tokens"] for r in ok),
        "generated_tokens": gen_tokens,
        "gen_tok_s": round(gen_tokens / wall, 2) if wall > 0 else 0.0,
        "ttft_ms": summary_ms([r["ttft"] for r in ok]),
        "itl_ms": summary_ms(gaps),
        "tpot_ms": summary_ms([r["tpot"] for r in ok if r["tpot"] is not None]),
        "latency_ms": summary_ms([r["latency"] for r in ok]),
        "errors": [r["error"] for r in failed[:5]],
        # CPU seconds this client used: near wall_s means the client, not the server, set the pace
        "client_cpu_s": round(client_cpu, 3),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080", help="server base URL (loopback only)")
    ap.add_argument("--concurrency", default="1,8,32,128", help="comma-separated stream counts, one run each")
    ap.add_argument("--requests", type=int, default=0,
                    help="requests per run (default: max(8, 2 x concurrency))")
    ap.add_argument("--max-time", type=float, default=300.0,
                    help="seconds per run after which no new request starts")
    ap.add_argument("--timeout", type=float, default=600.0, help="socket timeout per request, seconds")
    ap.add_argument("--prompt-tokens", type=parse_range, default=(128, 1024), help="LO:HI prompt length")
    ap.add_argument("--gen-tokens", type=parse_range, default=(128, 256), help="LO:HI generated tokens")
    ap.add_argument("--token-range", type=parse_range, default=(1000, 20000),
                    help="LO:HI random prompt token ids (clamped to the vocabulary)")
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--model", default=None, help="model name (default: the first of /v1/models)")
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1, help="requests sent before the runs, not counted")
    ap.add_argument("--wait", type=float, default=60.0,
                    help="seconds to wait for the server to answer /v1/models (it may still be loading)")
    args = ap.parse_args()
    try:
        concs = [int(c) for c in args.concurrency.split(",") if c.strip()]
    except ValueError:
        raise SystemExit(f"loadgen: bad --concurrency {args.concurrency!r}")
    if not concs or min(concs) < 1:
        raise SystemExit("loadgen: --concurrency needs positive integers")

    t = Target(args.url, args.api_key, args.timeout)
    ready_by = time.monotonic() + args.wait
    while True:
        try:
            models = t.get_json("/v1/models")
            break
        except (OSError, RuntimeError, ValueError) as e:
            if time.monotonic() >= ready_by:
                print(f"loadgen: cannot reach {args.url}: {e}", file=sys.stderr)
                return 1
            time.sleep(0.5)
    data = models.get("data") or [{}]
    model = args.model or data[0].get("id")
    meta = data[0].get("meta") or {}
    vocab = meta.get("n_vocab")
    lo, hi = args.token_range
    if vocab:
        hi = min(hi, int(vocab))
    if hi <= lo:
        raise SystemExit(f"loadgen: token range {lo}:{hi} is empty for a vocabulary of {vocab}")

    for i in range(args.warmup):
        r = one_request(t, model, [lo + i] * args.prompt_tokens[0], args.gen_tokens[0], args.temperature)
        if not r["ok"]:
            print(f"loadgen: warm-up request failed: {r['error']}", file=sys.stderr)

    runs = []
    for c in concs:
        n = args.requests or max(8, 2 * c)
        print(f"loadgen: {c} streams, {n} requests ...", file=sys.stderr)
        res = run(t, model, c, n, args.max_time, args.prompt_tokens, args.gen_tokens, lo, hi,
                  args.temperature, args.seed)
        print(f"loadgen:   {res['gen_tok_s']} tok/s, TTFT p50 {res['ttft_ms']['p50']} ms "
              f"p99 {res['ttft_ms']['p99']} ms, ITL p50 {res['itl_ms']['p50']} ms "
              f"p99 {res['itl_ms']['p99']} ms, {res['failed']} failed", file=sys.stderr)
        runs.append(res)
    out = {
        "url": args.url,
        "model": model,
        "owned_by": data[0].get("owned_by"),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "params": {
            "prompt_tokens": list(args.prompt_tokens),
            "gen_tokens": list(args.gen_tokens),
            "token_ids": [lo, hi],
            "temperature": args.temperature,
            "seed": args.seed,
            "max_time_s": args.max_time,
        },
        "runs": runs,
    }
    print(json.dumps(out, indent=2))
    return 2 if any(r["failed"] for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
