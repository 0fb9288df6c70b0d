#!/usr/bin/env python3
"""The reference scheme's speed on the same GPU, for bench/gpu/run_bench.sh.

mit-han-lab/streaming-llm evaluates long-stream perplexity one token per forward with batch
1: feed token t with the cache, take the NLL of token t+1 from the logits (a sync per token),
then trim the cache to start + recent entries. This script times that loop in Hugging Face
transformers (eager attention, fp16, random weights of a given Llama shape), and the paper's
baseline, sliding window with re-computation (a fresh forward over the last W tokens for every
token). Keys stay at the positions they were rotated at when trimmed (the reference re-rotates
them to cache positions, a few extra elementwise ops per step): the cost is that of the
reference, the numbers are not meant as perplexities.

Prints one JSON line per measurement:
  {"scheme": "stream", "cache": 2048, "ms_per_token": ..., "tokens_per_s": ..., "gpu": ...}
  {"scheme": "recompute", "cache": 256, ...}
"""
import argparse
import json
import statistics
import time

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM


def make_model(a):
    cfg = LlamaConfig(vocab_size=a.vocab, hidden_size=a.dim, intermediate_size=a.ffn, num_hidden_layers=a.layers,
                      num_attention_heads=a.heads, num_key_value_heads=a.heads,
                      max_position_embeddings=a.ctx, attn_implementation="eager")
    torch.manual_seed(0)
    torch.set_default_dtype(torch.float16)
    with torch.device("cuda"):
        m = LlamaForCausalLM(cfg)
    torch.set_default_dtype(torch.float32)
    return m.eval()


def trim(cache, start, recent):
    """Keep cache entries [0, start) and the last `recent`, as StartRecentKVCache does."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        for L in layers:
            k, v = L.keys, L.values
            if k is not None and k.shape[2] > start + recent:
                L.keys = torch.cat([k[:, :, :start], k[:, :, -recent:]], dim=2)
                L.values = torch.cat([v[:, :, :start], v[:, :, -recent:]], dim=2)
        return
    for i in range(len(cache.key_cache)):  # older transformers
        k, v = cache.key_cache[i], cache.value_cache[i]
        if k.shape[2] > start + recent:
            cache.key_cache[i] = torch.cat([k[:, :, :start], k[:, :, -recent:]], dim=2)
            cache.value_cache[i] = torch.cat([v[:, :, :start], v[:, :, -recent:]], dim=2)


@torch.no_grad()
def stream(m, a, cache_size, ids):
    start, recent = 4, cache_size - 4
    out = m(input_ids=ids[:, :cache_size], use_cache=True)
    cache = out.past_key_values
    trim(cache, start, recent)
    times = []
    n = cache_size
    for t in range(cache_size, cache_size + a.warmup + a.tokens):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = m(input_ids=ids[:, t:t + 1], past_key_values=cache, use_cache=True,
                position_ids=torch.tensor([[min(n, cache_size)]], device="cuda"))
        logp = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        nll = -logp[ids[0, t + 1]].item()  # the reference's sync per token
        cache = out.past_key_values
        trim(cache, start, recent)
        n += 1
        if t >= cache_size + a.warmup:
            times.append(time.perf_counter() - t0)
    del nll
    return statistics.median(times)


@torch.no_grad()
def recompute(m, a, w, ids):
    times = []
    for t in range(w, w + a.warmup + a.rtokens):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = m(input_ids=ids[:, t - w + 1:t + 1], use_cache=False)
        logp = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        logp[ids[0, t + 1]].item()
        if t >= w + a.warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--dim", type=int, default=4096)
    p.add_argument("--ffn", type=int, default=11008)
    p.add_argument("--layers", type=int, default=32)
    p.add_argument("--heads", type=int, default=32)
    p.add_argument("--ctx", type=int, default=4096)
    p.add_argument("--caches", default="256,512,1024,2048,4096")
    p.add_argument("--tokens", type=int, default=30)
    p.add_argument("--rtokens", type=int, default=8)
    p.add_argument("--warmup", type=int, default=3)
    a = p.parse_args()
    m = make_model(a)
    caches = [int(c) for c in a.caches.split(",")]
    g = torch.Generator(device="cpu").manual_seed(1)
    ids = torch.randint(0, a.vocab, (1, max(caches) + a.warmup + a.tokens + 2), generator=g).cuda()
    base = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "transformers": transformers.__version__,
            "dtype": "float16", "attention": "eager",
            "shape": {"vocab": a.vocab, "dim": a.dim, "ffn": a.ffn, "layers": a.layers, "heads": a.heads}}
    for c in caches:
        s = stream(m, a, c, ids)
        print(json.dumps(dict(base, scheme="stream", cache=c, ms_per_token=s * 1e3, tokens_per_s=1.0 / s)), flush=True)
    for c in caches:
        r = recompute(m, a, c, ids)
        print(json.dumps(dict(base, scheme="recompute", cache=c, ms_per_token=r * 1e3, tokens_per_s=1.0 / r)), flush=True)


if __name__ == "__main__":
    main()
