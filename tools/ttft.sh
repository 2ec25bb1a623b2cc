#!/usr/bin/env bash
# Time to first token from an EMPTY kernel cache, with serving while compiling (default) and without
# (--no-early-serve), REPS times each, for `rocmforge run` and (SERVE=1) the server's first streamed
# chunk. Each repetition gets a fresh cache directory; the tuning database of the real cache is copied
# in, so tuned configurations stay in use. Prints a table (median, min, max in ms).
#
#   tools/ttft.sh [MODEL.gguf ...]        default: .model/smollm2-135m-instruct-q4_1.gguf
#   env: BIN (rocmforge binary; default .gpu/bin/rocmforge, else target/release/rocmforge),
#        REPS (3), SERVE (1: also the server), DEVICE (auto), PROMPT
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$( [ -x .gpu/bin/rocmforge ] && echo .gpu/bin/rocmforge || echo target/release/rocmforge )}
REPS=${REPS:-3}
SERVE=${SERVE:-1}
DEVICE=${DEVICE:-auto}
PROMPT=${PROMPT:-"The history of the printing press begins in the fifteenth century, when Johannes Gutenberg combined movable metal type, oil-based ink and a wooden screw press. Within fifty years"}
MODELS=("$@")
[ ${#MODELS[@]} -gt 0 ] || MODELS=(.model/smollm2-135m-instruct-q4_1.gguf)
[ -x "$BIN" ] || { echo "ttft.sh: no rocmforge binary at $BIN (set BIN)" >&2; exit 2; }
BASE=${ROCMFORGE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rocmforge}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

fresh_cache() { # a new empty kernel cache with the real tuning database
  local d; d=$(mktemp -d "$WORK/cache.XXXX")
  [ -d "$BASE/tune" ] && cp -r "$BASE/tune" "$d/tune"
  echo "$d"
}

# run: milliseconds from process start to the first streamed text (the CLI measures it)
ttft_run() { # model, extra flag
  local cache; cache=$(fresh_cache)
  ROCMFORGE_CACHE_DIR=$cache "$BIN" run "$1" -p "$PROMPT" -n 4 --temp 0 --device "$DEVICE" $2 \
    2>"$WORK/run.err" >/dev/null || { cat "$WORK/run.err" >&2; return 1; }
  sed -n 's/^first token *= *\([0-9.]*\) ms.*/\1/p' "$WORK/run.err"
}

# serve: milliseconds from starting the process to the first streamed chunk of a request sent as
# soon as the server listens
ttft_serve() { # model, extra flag
  local cache; cache=$(fresh_cache)
  ROCMFORGE_CACHE_DIR=$cache python3 - "$BIN" "$1" "$DEVICE" "$PROMPT" $2 <<'EOF'
import http.client, json, re, subprocess, sys, time
bin_, model, device, prompt, extra = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
t0 = time.monotonic()
p = subprocess.Popen([bin_, "serve", model, "--port", "0", "--device", device, "--max-seqs", "4", *extra],
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
try:
    port = None
    for line in p.stdout:
        m = re.search(r"listening on http://[^:]+:(\d+)", line)
        if m:
            port = int(m.group(1)); break
    if port is None:
        sys.exit("server did not start")
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request("POST", "/v1/completions", json.dumps({"prompt": prompt, "max_tokens": 4, "temperature": 0, "stream": True}),
              {"Content-Type": "application/json"})
    r = c.getresponse()
    for raw in r:
        if raw.startswith(b"data: {"):
            print(f"{(time.monotonic() - t0) * 1e3:.1f}"); break
finally:
    p.terminate(); p.wait(timeout=30)
EOF
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) {print "- - -"; exit} m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.0f %.0f %.0f\n", m, a[1], a[NR]}'; }

printf "%-36s %-6s %-24s %9s %9s %9s\n" model what mode median_ms min_ms max_ms
for m in "${MODELS[@]}"; do
  [ -f "$m" ] || { echo "ttft.sh: $m missing" >&2; continue; }
  kinds=(run); [ "$SERVE" = 1 ] && kinds+=(serve)
  for k in "${kinds[@]}"; do
    for mode in early full; do
      flag=""; [ "$mode" = full ] && flag="--no-early-serve"
      vals=()
      for _ in $(seq "$REPS"); do vals+=("$("ttft_$k" "$m" "$flag")"); done
      read -r med lo hi < <(printf "%s\n" "${vals[@]}" | grep . | median)
      printf "%-36s %-6s %-24s %9s %9s %9s\n" "$(basename "$m" .gguf)" "$k" \
        "$([ $mode = early ] && echo serving-while-compiling || echo compile-all-first)" "$med" "$lo" "$hi"
    done
  done
done
