#!/usr/bin/env bash
# sinkbench stream end to end on a tiny random model: prompts from a file and from stdin give
# one answer line each (the same ones), status lines appear with the cache never over its
# capacity, a 20k-token soak keeps memory flat, dense beyond the context and oversized
# caches are refused, bad flags give one stderr line and exit 2. Also generate's sampling
# flags: same seed -> same text, another seed -> other text.
set -u
cd "$(dirname "$0")/.." || exit 1
sb=${SINKBENCH:-bin/sinkbench}
tmp=$(mktemp -d /tmp/sb_test_stream.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
jget() { sed -n "s/.*\"$1\":\(\"[^\"]*\"\|[^,}]*\).*/\1/p" "$2" | tr -d '"'; }
fcmp() { awk -v a="$1" -v b="$3" "BEGIN { exit !(a $2 b) }"; }

# --- a tiny model with a tokenizer of its own
awk 'BEGIN { srand(2); split("the cat sat on a mat and dog ran to see sun is red big small old new", w, " ");
             for (i = 0; i < 3000; i++) printf "%s%s", w[int(rand() * 19) + 1], (i % 12 == 11) ? ".\n" : " " }' \
    >"$tmp/text.txt"
$sb init --vocab 320 --dim 32 --layers 2 --heads 2 --ffn 64 --ctx 64 --seed 5 --scale 2 --out "$tmp/m" >/dev/null \
    || { echo "FAIL: init"; exit 1; }
$sb tokenizer-train --in "$tmp/text.txt" --out "$tmp/m" --vocab 300 --threads 1 >/dev/null 2>&1 \
    || { echo "FAIL: tokenizer-train"; exit 1; }
printf 'the cat sat\n\nwhere is the dog\nthe sun is red\n' >"$tmp/prompts.txt"

# --- prompts from a file: one answer line per non-empty prompt, status lines on stderr
$sb stream --model "$tmp/m" --policy sinks:4:28 --prompts "$tmp/prompts.txt" --max-answer 12 --seed 7 \
    --status-every 10 >"$tmp/out_file" 2>"$tmp/err_file" || fail "stream from file exited $?: $(cat "$tmp/err_file")"
[ "$(wc -l <"$tmp/out_file")" -eq 3 ] || fail "3 prompts gave $(wc -l <"$tmp/out_file") answer lines"
grep -q '^stream: [0-9]* tokens .*tok/s, cache [0-9]*/32, rss [0-9.]* MiB' "$tmp/err_file" \
    || fail "no status line: $(head -3 "$tmp/err_file")"
[ "$(grep -c '^stream: ' "$tmp/err_file")" -ge 3 ] || fail "expected several status lines"
sed -n 's/.*cache \([0-9]*\)\/\([0-9]*\).*/\1 \2/p' "$tmp/err_file" | awk '$1 > $2 { bad = 1 } END { exit bad }' \
    || fail "cache over capacity: $(grep cache "$tmp/err_file")"
# 3 turns of ~10 framed prompt tokens + up to 12 answer tokens: the 28-token window has wrapped
last=$(grep '^stream: ' "$tmp/err_file" | tail -1)
case "$last" in *"cache 32/32"*"3 turns"* | *"3 turns"*"cache 32/32"*) ;; *) fail "cache not full after 3 turns: $last" ;; esac

# --- the same prompts on stdin give the same answers (same seed, same cache)
$sb stream --model "$tmp/m" --policy sinks:4:28 --max-answer 12 --seed 7 --status-every 0 \
    <"$tmp/prompts.txt" >"$tmp/out_stdin" 2>"$tmp/err_stdin" || fail "stream from stdin: $(cat "$tmp/err_stdin")"
cmp -s "$tmp/out_file" "$tmp/out_stdin" || fail "stdin answers differ from file answers"
[ -s "$tmp/err_stdin" ] && fail "--status-every 0 still wrote to stderr: $(cat "$tmp/err_stdin")"
$sb stream --model "$tmp/m" --policy sinks:4:28 --max-answer 12 --seed 8 --status-every 0 \
    <"$tmp/prompts.txt" >"$tmp/out_seed8" 2>/dev/null
cmp -s "$tmp/out_file" "$tmp/out_seed8" && fail "another seed gives the same answers"
# greedy answers do not depend on the seed
for s in 1 2; do
    $sb stream --model "$tmp/m" --policy window:32 --temperature 0 --max-answer 8 --seed $s --status-every 0 \
        <"$tmp/prompts.txt" >"$tmp/greedy$s" 2>/dev/null || fail "greedy stream"
done
cmp -s "$tmp/greedy1" "$tmp/greedy2" || fail "greedy answers depend on the seed"

# --- soak: 20k tokens cycling the prompts, memory flat after 10k, JSON summary written
$sb stream --model "$tmp/m" --policy sinks:4:28 --prompts "$tmp/prompts.txt" --tokens 20000 --max-answer 16 \
    --status-every 5000 --json "$tmp/soak.json" >/dev/null 2>"$tmp/err_soak" || fail "soak: $(cat "$tmp/err_soak")"
[ "$(jget tokens "$tmp/soak.json")" = 20000 ] || fail "soak tokens $(jget tokens "$tmp/soak.json")"
[ "$(jget mode "$tmp/soak.json")" = soak_prompts ] || fail "soak mode $(jget mode "$tmp/soak.json")"
fcmp "$(jget turns "$tmp/soak.json")" '>' 100 || fail "soak turns $(jget turns "$tmp/soak.json")"
[ "$(jget cache_len "$tmp/soak.json")" -le 32 ] || fail "soak cache_len $(jget cache_len "$tmp/soak.json")"
r10=$(jget rss_mb_at_10k "$tmp/soak.json"); pend=$(jget peak_rss_mb_at_end "$tmp/soak.json")
fcmp "$r10" '>' 1 || fail "rss_mb_at_10k $r10"
# ASan's quarantine holds freed memory back, so RSS is no measure of the cache there
if [ -n "${SB_UNDER_SANITIZER:-}" ]; then
    echo "SKIP: soak RSS growth check under a sanitizer"
else
    fcmp "$pend" "<" "$(awk -v r="$r10" 'BEGIN { print r * 1.05 }')" || fail "memory grew during the soak: $r10 MiB at 10k, peak $pend MiB at 20k"
fi
for k in ms_per_token_start ms_per_token_end tokens_per_s git_rev; do
    v=$(jget $k "$tmp/soak.json"); [ -n "$v" ] && [ "$v" != null ] || fail "soak JSON lacks $k"
done
[ "$(grep -c '^stream: ' "$tmp/err_soak")" -eq 4 ] || fail "soak: want 4 status lines (every 5000 of 20000)"

# --- free-running soak without prompts: summary JSON is the last stderr line
$sb stream --model "$tmp/m" --policy learned:28 --tokens 3000 --status-every 0 >/dev/null 2>"$tmp/err_free" \
    && fail "learned:W on a model without a <sink> token accepted"
$sb stream --model "$tmp/m" --policy window:60 --tokens 3000 --status-every 0 >"$tmp/out_free" 2>"$tmp/err_free" \
    || fail "free soak: $(cat "$tmp/err_free")"
tail -1 "$tmp/err_free" >"$tmp/free.json"
[ "$(jget mode "$tmp/free.json")" = soak_free ] || fail "free soak summary: $(cat "$tmp/err_free")"
[ "$(jget generated "$tmp/free.json")" -ge 2999 ] || fail "free soak generated $(jget generated "$tmp/free.json")"
[ -s "$tmp/out_free" ] || fail "free soak printed no text"

# --- dense: refused beyond the context, stops clearly when the context fills
$sb stream --model "$tmp/m" --policy dense --tokens 1000 >/dev/null 2>"$tmp/e"; rc=$?
[ $rc -eq 2 ] || fail "dense --tokens 1000 over ctx 64: exit $rc, want 2"
grep -q "context" "$tmp/e" || fail "dense refusal does not mention the context: $(cat "$tmp/e")"
yes 'the cat sat on the mat' | head -20 >"$tmp/many.txt"
$sb stream --model "$tmp/m" --policy dense --prompts "$tmp/many.txt" --max-answer 8 --status-every 0 \
    >/dev/null 2>"$tmp/e"; rc=$?
[ $rc -eq 1 ] || fail "dense conversation past the context: exit $rc, want 1"
[ "$(wc -l <"$tmp/e")" -eq 1 ] && grep -q "^sinkbench stream: the dense cache reached the model's context of 64" "$tmp/e" \
    || fail "dense past the context: $(cat "$tmp/e")"
$sb stream --model "$tmp/m" --policy sinks:4:100 --prompts "$tmp/prompts.txt" >/dev/null 2>"$tmp/e"; rc=$?
[ $rc -eq 2 ] && grep -q "more than the model's context of 64" "$tmp/e" || fail "cache 104 > ctx 64: exit $rc $(cat "$tmp/e")"

# --- bad flags and inputs: one line on stderr, exit 2 (usage) or 1 (input)
check() {
    local want=$1; shift
    "$sb" stream "$@" >"$tmp/o" 2>"$tmp/e" </dev/null; local rc=$?
    [ $rc -eq "$want" ] || fail "stream $*: exit $rc, want $want"
    [ "$(wc -l <"$tmp/e")" -eq 1 ] || fail "stream $*: $(wc -l <"$tmp/e") stderr lines: $(cat "$tmp/e")"
    grep -q '^sinkbench stream: ' "$tmp/e" || fail "stream $*: stderr $(cat "$tmp/e")"
}
check 2 --policy sinks:4:28
check 2 --model "$tmp/m"
check 2 --model "$tmp/m" --policy sinks:4:28 --bogus 1
check 2 --model "$tmp/m" --policy sinks:4:28 --tokens abc
check 2 --model "$tmp/m" --policy sinks:4:28 --tokens 0
check 2 --model "$tmp/m" --policy sinks:4:28 --top-p 2
check 2 --model "$tmp/m" --policy sinks:4:28 --temperature -1
check 2 --model "$tmp/m" --policy sinks:4:28 --max-answer
check 2 --model "$tmp/m" --policy sinks:x:28
check 1 --model "$tmp/m" --policy sinks:4:28 --prompts "$tmp/nonexistent.txt"
check 1 --model "$tmp/nonexistent" --policy sinks:4:28
check 1 --model "$tmp/m" --policy sinks:4:28 --tokenizer "$tmp/nonexistent.json" --prompts "$tmp/prompts.txt"
$sb stream --help | grep -q -- '--status-every' || fail "--help"

# --- generate: sampling is deterministic for a seed and follows it
for s in 1 1 2; do
    $sb generate --model "$tmp/m" --prompt "the cat" --max-tokens 40 --temperature 1 --top-p 0.95 --seed $s \
        >>"$tmp/gen$s" 2>"$tmp/e" || fail "generate --seed $s: $(cat "$tmp/e")"
done
[ "$(sed -n 1p "$tmp/gen1")" = "$(sed -n 2p "$tmp/gen1")" ] || fail "generate: same seed, different text"
[ "$(sed -n 1p "$tmp/gen1")" != "$(cat "$tmp/gen2")" ] || fail "generate: seeds 1 and 2 give the same text"
$sb generate --model "$tmp/m" --prompt "the cat" --max-tokens 10 --top-p 0 >/dev/null 2>"$tmp/e"
[ $? -eq 2 ] || fail "generate --top-p 0 accepted"

# provenance names the revision checked out when a run starts, not the one at its end: a
# copy of the binary in a scratch git repository, a commit made while it waits for input
if command -v git >/dev/null; then
    g=$tmp/gitrev
    mkdir -p "$g" && cp "$sb" "$g/sinkbench" && mkfifo "$g/in"
    gc() { git -C "$g" -c user.email=t@example.org -c user.name=t commit -q --allow-empty -m "$1"; }
    git -C "$g" init -q && gc one
    rev1=$(git -C "$g" rev-parse --short HEAD)
    env -u SINKBENCH_GIT_REV "$g/sinkbench" stream --model "$tmp/m" --policy sinks:4:28 --max-answer 4 \
        --seed 7 --status-every 0 --json "$g/summary.json" <"$g/in" >/dev/null 2>"$g/err" &
    pid=$!
    exec 9>"$g/in"
    # started once it blocks reading its prompts (syscall 0 = read)
    for _ in $(seq 100); do [ "$(cut -d' ' -f1 /proc/$pid/syscall 2>/dev/null)" = 0 ] && break; sleep 0.1; done
    gc two
    echo "the cat" >&9
    exec 9>&-
    wait $pid || fail "stream in the scratch repository: $(cat "$g/err")"
    grep -q "\"git_rev\":\"$rev1\"" "$g/summary.json" ||
        fail "git_rev should be $rev1 (checked out at the start), got: $(grep -o '"git_rev":"[^"]*"' "$g/summary.json")"
fi

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "stream: all checks passed"
