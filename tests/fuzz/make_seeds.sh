#!/usr/bin/env bash
# Regenerates the seed corpora under tests/fuzz/corpus/ from our own writers (bin/sinkbench),
# the committed fixtures and a few hand-written edge cases. Files named valid_* must be
# accepted by their target (tests/test_fuzz_regress.c checks it); the others may be rejected.
#   tests/fuzz/make_seeds.sh        (needs bin/sinkbench, build/libsinkbench.a and python3)
set -euo pipefail
cd "$(dirname "$0")/../.."
sb=bin/sinkbench
c=tests/fuzz/corpus
tmp=$(mktemp -d /tmp/sb_fuzz_seeds.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
rm -rf "$c"
mkdir -p "$c"/{safetensors,st_index,model,hfconfig,tokenizer_json,tokfile,ids,train_config,study_config,policy,llama2c,llama2c_tok,resume_state}

# --- safetensors and model: the tiny model of fuzz_model.c, in each dtype
for dt in f32 f16 bf16; do
    "$sb" init --vocab 32 --dim 8 --layers 1 --heads 2 --ffn 16 --ctx 64 --dtype "$dt" --out "$tmp/m_$dt" >/dev/null
    cp "$tmp/m_$dt/model.safetensors" "$c/model/valid_tiny_$dt.safetensors"
done
cp "$tmp/m_f32/model.safetensors" "$c/safetensors/valid_tiny_f32.safetensors"
cp "$tmp/m_bf16/model.safetensors" "$c/safetensors/valid_tiny_bf16.safetensors"
"$sb" init --vocab 32 --dim 8 --layers 1 --heads 2 --kv-heads 1 --ffn 16 --ctx 64 --dtype f16 --sink-token 3 \
    --softmax sink_logit --out "$tmp/m_gqa" >/dev/null
cp "$tmp/m_gqa/model.safetensors" "$c/safetensors/valid_gqa_sinklogit_f16.safetensors"
python3 - "$c/safetensors" <<'PY'
import json, struct, sys
d = sys.argv[1]
def st(name, header, data=b""):
    h = json.dumps(header).encode()
    open(f"{d}/{name}", "wb").write(struct.pack("<Q", len(h)) + h + data)
# every dtype the format defines, one element each, plus metadata and an empty tensor
dts = {"F64": 8, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1,
       "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F16": 2, "BF16": 2, "F32": 4}
hdr, off = {"__metadata__": {"format": "pt"}}, 0
for k, n in dts.items():
    hdr["t_" + k] = {"dtype": k, "shape": [1], "data_offsets": [off, off + n]}; off += n
hdr["empty"] = {"dtype": "F32", "shape": [0, 3], "data_offsets": [off, off]}
st("valid_all_dtypes.safetensors", hdr, bytes(range(off)))
st("valid_empty.safetensors", {})
st("shape_too_big.safetensors", {"w": {"dtype": "F32", "shape": [1 << 40, 1 << 30], "data_offsets": [0, 4]}}, b"\0" * 4)
st("offsets_past_end.safetensors", {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 1 << 62]}}, b"\0" * 8)
open(f"{d}/header_len_huge.safetensors", "wb").write(struct.pack("<Q", (1 << 64) - 1) + b"{}")
PY

# --- index: shards are fixed by fuzz_st_index.c
cat >"$c/st_index/valid_two_shards.json" <<'J'
{"metadata": {"total_size": 42},
 "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
                "c": "model-00002-of-00002.safetensors"}}
J
echo '{"weight_map": {"a": "model-00001-of-00002.safetensors"}}' >"$c/st_index/valid_one_shard.json"
echo '{"weight_map": {"zz": "model-00001-of-00002.safetensors"}}' >"$c/st_index/missing_tensor.json"
echo '{"weight_map": {"a": "../../etc/passwd"}}' >"$c/st_index/escape_path.json"
echo '{"weight_map": {"a": "model-00003-of-00002.safetensors"}}' >"$c/st_index/missing_shard.json"

# --- config.json: ours and the fixtures' Hugging Face files
cp "$tmp/m_f32/config.json" "$c/hfconfig/valid_ours_llama.json"
cp "$tmp/m_gqa/config.json" "$c/hfconfig/valid_ours_gqa_sinklogit.json"
for f in tests/fixtures/*/config.json; do
    cp "$f" "$c/hfconfig/hf_$(basename "$(dirname "$f")").json"
done

# --- tokenizer.json: a small one of ours and the fixtures' third-party ones
for i in $(seq 60); do echo "the cat sat on the mat, and the dog ran 42 times! <|endoftext|>"; done >"$tmp/t.txt"
"$sb" tokenizer-train --in "$tmp/t.txt" --out "$tmp/tok" --vocab 300 >/dev/null 2>&1
cp "$tmp/tok/tokenizer.json" "$c/tokenizer_json/valid_ours_300.json"
cp tests/fixtures/tokenizers/bytelevel_bpe/tokenizer.json "$c/tokenizer_json/valid_hf_bytelevel.json"
cp tests/fixtures/tokenizers/sp_bpe/tokenizer.json "$c/tokenizer_json/valid_hf_sentencepiece.json"

# --- .tok and .ids
head -c 3000 "$tmp/t.txt" >"$tmp/small.txt"
"$sb" tokenize --model "$tmp/tok" --in "$tmp/small.txt" --out "$c/tokfile/valid_small.tok" >/dev/null 2>&1
: >"$tmp/empty.txt"
"$sb" tokenize --model "$tmp/tok" --in "$tmp/empty.txt" --out "$c/tokfile/valid_empty.tok" >/dev/null 2>&1
head -c 200 "$c/tokfile/valid_small.tok" >"$c/tokfile/truncated.tok"
head -c 600 tests/fixtures/llama/stream.ids >"$c/ids/valid_stream.ids"
printf '1 2 3\n\t4   5\r\n6\n' >"$c/ids/valid_whitespace.ids"
printf '' >"$c/ids/valid_empty.ids"
printf '1 2 99999999999999999999\n' >"$c/ids/overflow.ids"
printf '1 -2 3\n' >"$c/ids/negative.ids"
printf '12a 7\n' >"$c/ids/bad_token.ids"

# --- INI configs (the first byte of a study seed is its mode: 0 smoke, 1 quick, 2 full)
for f in configs/train_*.ini; do sed -e "/^tokenizer *=/d" -e "/^;/d" "$f" >"$c/train_config/$(basename "$f")"; done
for f in configs/*.ini; do
    case "$f" in configs/train_*) continue ;; esac
    n=$(basename "$f" .ini)
    { printf '\0'; cat "$f"; } >"$c/study_config/valid_${n}_smoke.ini"
    { printf '\2'; cat "$f"; } >"$c/study_config/valid_${n}_full.ini"
done
printf '\0W + 4 * (C - 2)\n' >"$c/study_config/expr.ini"

# --- policy specs
for p in dense window:1020 sinks:4:1020 sinks:4:508:newline learned:1020 recompute:256 sinks:0:1 \
         sinks:2147483648:2147483648; do
    printf '%s' "$p" >"$c/policy/valid_$(echo "$p" | tr ':' '_').txt"
done
printf 'sinks:4:0' >"$c/policy/zero_window.txt"
printf 'sinks:4:9999999999999999999999' >"$c/policy/overflow.txt"
printf 'sinks:1:2:3:4:5' >"$c/policy/too_many.txt"

# --- llama2.c checkpoint and tokenizer
python3 - "$c/llama2c" <<'PY'
import struct, sys
d = sys.argv[1]
def ckpt(name, dim, hidden, layers, heads, kv, vocab, seq):
    V, hd = abs(vocab), dim // heads
    n = V*dim + layers*(dim + dim*dim + 2*kv*hd*dim + dim*dim + dim + 3*hidden*dim) + dim + seq*hd
    if vocab < 0: n += V*dim
    vals = [((i * 2654435761) % 1000) / 1000.0 - 0.5 for i in range(n)]
    open(f"{d}/{name}", "wb").write(struct.pack("<7i", dim, hidden, layers, heads, kv, vocab, seq) +
                                    struct.pack(f"<{n}f", *vals))
ckpt("valid_shared.bin", 8, 16, 1, 2, 2, 32, 16)
ckpt("valid_unshared_gqa.bin", 8, 16, 2, 2, 1, -32, 8)
open(f"{d}/header_only.bin", "wb").write(struct.pack("<7i", 8, 16, 1, 2, 2, 32, 16))
open(f"{d}/huge_header.bin", "wb").write(struct.pack("<7i", 1 << 30, 1 << 30, 1 << 30, 2, 2, -(1 << 31), 1 << 30))
PY
cp ../shared/fixtures/stories260K/tok512.bin "$c/llama2c_tok/valid_tok512.bin" 2>/dev/null || true
python3 - "$c/llama2c_tok" <<'PY'
import struct, sys
d = sys.argv[1]
toks = [(0.0, b"<unk>"), (0.0, b"<s>"), (0.0, b"</s>")] + [(0.0, b"<0x%02X>" % i) for i in range(256)]
toks += [(-1.0, b" "), (-2.0, b"a"), (-3.0, b" a"), (-4.0, b"ab"), (-5.0, b"\xc3\xa9")]
body = b"".join(struct.pack("<fi", s, len(t)) + t for s, t in toks)
open(f"{d}/valid_small.bin", "wb").write(struct.pack("<i", 6) + body)
open(f"{d}/bad_len.bin", "wb").write(struct.pack("<i", 6) + struct.pack("<fi", 0.0, 1 << 30) + b"x")
PY
# --- resume states (util/resume_state.c), written by the library itself; fuzz_resume_state.c
# loads them as `ppl` states under the hash 0, 1, ..., 31
cat >"$tmp/mkresume.c" <<'C'
#include "engine/common.h"
#include "util/resume_state.h"
int main(int argc, char **argv) {
    (void)argc;
    uint8_t hash[32];
    for (int i = 0; i < 32; i++) hash[i] = (uint8_t)i;
    double nll[5] = {1.5, 2.25, 0.125, 3, 4};
    return sb_resume_save(argv[1], "ppl", hash, nll, sizeof nll) || sb_resume_save(argv[2], "ppl", hash, nll, 0) ||
           sb_resume_save(argv[3], "latency", hash, nll, 16);
}
C
cc -std=c11 -D_GNU_SOURCE -I. -o "$tmp/mkresume" "$tmp/mkresume.c" build/libsinkbench.a \
    $(pkg-config --libs openblas hdf5-serial zlib libcjson inih) -lm -fopenmp
"$tmp/mkresume" "$c/resume_state/valid_ppl.resume" "$c/resume_state/valid_empty.resume" \
    "$c/resume_state/other_command.resume"
head -c 60 "$c/resume_state/valid_ppl.resume" >"$c/resume_state/truncated.resume"

du -sh "$c"; find "$c" -type f | wc -l
