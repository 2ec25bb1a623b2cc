#!/usr/bin/env bash
# The test command: install what the tests need (tools/setup.sh), then run every CPU test.
# GPU tests are #[ignore = "needs a GPU"]; run them on a GPU machine with ../shared/tools/gpu-bundle.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
cargo test --release "$@"
