#!/usr/bin/env bash
# The evaluations behind a default model's card and the issue's Table-3 check, as JSON:
#   scripts/model_evals.sh MODEL_DIR OUT_DIR
# OUT_DIR/<name>.book.json and <name>.austen.json: sinks:4:508 over the whole held-out streams
# (the card's rows; --windows 20 for the curve's flatness); for a model with a sink token also
# <name>.book.learned.json (learned:511, whole stream); and over the quick study's 200K tokens
# <name>.book.window.json (window:W with the model's cache: 511 with a sink token, else 512).
# Environment: BIN (default bin/sinkbench), DEVICE (default cpu), THREADS (default all cores).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: model_evals.sh MODEL_DIR OUT_DIR}
dir=${2:?usage: model_evals.sh MODEL_DIR OUT_DIR}
bin=${BIN:-bin/sinkbench}
dev=${DEVICE:-cpu}
threads=${THREADS:-$(nproc)}
name=$(basename "$model")
mkdir -p "$dir"
ppl() { # OUT POLICY DATA [extra...]
    local o=$1 p=$2 d=$3; shift 3
    echo "model_evals: $name $p on $(basename "$d") $*" >&2
    "$bin" ppl --model "$model" --data "$d" --policy "$p" --device "$dev" --threads "$threads" --json "$@" >"$o.tmp"
    mv "$o.tmp" "$o"
}
ppl "$dir/$name.book.json" sinks:4:508 data/tok/heldout-book.tok --windows 20
ppl "$dir/$name.austen.json" sinks:4:508 data/tok/heldout-austen.tok
if grep -q '"sink_token_id":[[:space:]]*[0-9]' "$model/config.json"; then
    ppl "$dir/$name.book.learned.json" learned:511 data/tok/heldout-book.tok --windows 20
    ppl "$dir/$name.book.window.json" window:511 data/tok/heldout-book.tok --tokens 200000
else
    ppl "$dir/$name.book.window.json" window:512 data/tok/heldout-book.tok --tokens 200000
fi
