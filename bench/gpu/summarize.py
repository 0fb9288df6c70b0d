#!/usr/bin/env python3
"""Summary of bench/gpu/run_bench.sh's raw outputs: docs/bench/gpu/bench_gpu.json, BENCH_GPU.md
and the data of the latency figure beside the paper's Fig. 10.

    summarize.py RAW_DIR OUT_DIR
"""
import json
import os
import sys

raw, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)


def load(name):
    p = os.path.join(raw, name)
    if not os.path.exists(p):
        return None
    with open(p) as f:
        txt = f.read().strip()
    if name.endswith(".jsonl"):
        return [json.loads(l) for l in txt.splitlines() if l.strip()]
    return json.loads(txt) if txt else None


# Llama-2-7B shape
V, D, L, H, F = 32000, 4096, 32, 32, 11008
hd, kvd = D // H, D
matmul_params = L * (D * (D + 2 * kvd) + D * D + 2 * F * D + D * F) + V * D
weight_bytes = 2 * (matmul_params + V * D)  # bf16: every matrix and the embedding


def flops_per_token(keys):
    return 2 * matmul_params + 4 * L * H * hd * keys


gpu = open(os.path.join(raw, "gpu.txt")).read().strip() if os.path.exists(os.path.join(raw, "gpu.txt")) else "unknown"
ceil, ceil1 = load("ceilings.json"), load("ceilings_m1.json")
res = {"gpu": gpu, "shape": "Llama-2-7B (random bf16 weights)", "ceilings": ceil, "ceilings_rows1": ceil1}
md = ["# sinkbench on the GPU: Llama-2-7B shape", "",
      "Measured by `make bench-gpu` (bench/gpu/run_bench.sh) in one run on one machine: `%s`." % gpu, ""]
rev = None
acc = []


def verdict(ok):
    return "yes" if ok else "**no**"


ref = load("reference.jsonl") or []
ref_stream = {r["cache"]: r for r in ref if r["scheme"] == "stream"}
ref_rec = {r["cache"]: r for r in ref if r["scheme"] == "recompute"}

ex = load("exact_4_2044.json")
if ex:
    rev = ex.get("git_rev")
    fl = flops_per_token(4 + 2044 + 1) * ex["tokens_per_s"]
    res["exact"] = {"policy": ex["policy"], "tokens": ex["tokens_scored"], "tokens_per_s": ex["tokens_per_s"],
                    "wall_s": ex["wall_s"], "achieved_tflop_s": fl / 1e12}
    md += ["## Exact mode (batched), sinks:4:2044", "",
           "| tokens | tokens/s | wall | achieved TFLOP/s | cuBLAS GEMM TFLOP/s at the model's shapes | share |",
           "|---:|---:|---:|---:|---:|---:|"]
    g = ceil["gemm_tflop_s_all_shapes"] if ceil else float("nan")
    md.append("| %d | %.0f | %.1f s | %.0f | %.0f | %.1f%% |" % (ex["tokens_scored"], ex["tokens_per_s"], ex["wall_s"],
                                                                fl / 1e12, g, 100 * fl / 1e12 / g))
    acc.append(("exact-mode FLOP/s >= 50% of cuBLAS GEMM at the model's shapes", fl / 1e12 >= 0.5 * g,
                "%.0f of %.0f TFLOP/s" % (fl / 1e12, g)))
    import glob
    for f in sorted(glob.glob(os.path.join(raw, "exact_4_2044_c*.json")),
                    key=lambda f: int(f.rsplit("_c", 1)[1].split(".")[0])):
        e = load(os.path.basename(f))
        if not e:
            continue
        fc = flops_per_token(4 + 2044 + 1) * e["tokens_per_s"]
        res.setdefault("exact_chunks", {})[e.get("chunk")] = {"tokens_per_s": e["tokens_per_s"], "achieved_tflop_s": fc / 1e12}
        md.append("| %d, `--chunk %s` | %.0f | %.1f s | %.0f | %.0f | %.1f%% |" % (
            e["tokens_scored"], e.get("chunk"), e["tokens_per_s"], e["wall_s"], fc / 1e12, g, 100 * fc / 1e12 / g))
    if 2048 in ref_stream:
        x = ex["tokens_per_s"] / ref_stream[2048]["tokens_per_s"]
        res["exact"]["vs_reference"] = x
        acc.append(("exact mode >= 500x the transformers reference's tokens/s (cache 2048)", x >= 500,
                    "%.0fx (%.1f tokens/s reference)" % (x, ref_stream[2048]["tokens_per_s"])))
    md.append("")
t2 = load("table2_cell.json")
if t2:
    res["table2_cell"] = {"policy": t2["policy"], "tokens": t2["tokens_scored"], "wall_s": t2["wall_s"],
                          "tokens_per_s": t2["tokens_per_s"], "load_s": t2.get("load_s")}
    acc.append(("one Table 2 cell (400K tokens, sinks:4:4092) <= 60 s", t2["wall_s"] <= 60, "%.1f s" % t2["wall_s"]))
    md += ["One Table 2 cell (`sinks:4:4092`, %d tokens): %.1f s of evaluation (%.0f tokens/s), plus %.1f s loading; "
           "the 20 cells of Table 2 at this rate: about %.0f minutes." % (t2["tokens_scored"], t2["wall_s"],
                                                                          t2["tokens_per_s"], t2.get("load_s", 0),
                                                                          20 * t2["wall_s"] / 60), ""]

floor_ms = None
if ceil:
    floor_ms = weight_bytes / (ceil["copy_gb_s"] * 1e9) * 1e3
    res["decode_floor_ms"] = floor_ms
dec = {}
for c in (2048, 4096):
    d = load("decode_%d.json" % c) or load("sweep_stream_%d.json" % c)
    if d:
        dec[c] = d
if dec:
    md += ["## Decode (one token per forward, CUDA graphs)", "",
           "Floor: weight bytes (%.2f GB) over the device-to-device copy bandwidth (%.0f GB/s, read + write) = %.2f ms."
           % (weight_bytes / 1e9, ceil["copy_gb_s"] if ceil else float("nan"), floor_ms or float("nan")), "",
           "| cache | mean ms/token | p50 | x floor | transformers reference ms/token | speedup |",
           "|---:|---:|---:|---:|---:|---:|"]
    res["decode"] = {}
    for c, d in dec.items():
        r = ref_stream.get(c)
        sp = r["ms_per_token"] / d["mean_ms"] if r else float("nan")
        res["decode"][c] = {"mean_ms": d["mean_ms"], "p50_ms": d["p50_ms"], "x_floor": d["mean_ms"] / floor_ms if floor_ms else None,
                            "reference_ms": r["ms_per_token"] if r else None, "speedup": sp}
        md.append("| 4+%d | %.2f | %.2f | %.2f | %s | %.1fx |" % (c - 4, d["mean_ms"], d["p50_ms"],
                                                               d["mean_ms"] / floor_ms if floor_ms else float("nan"),
                                                               "%.1f" % r["ms_per_token"] if r else "-", sp))
        if floor_ms:
            acc.append(("decode at 4+%d <= 1.5x the floor" % (c - 4), d["mean_ms"] <= 1.5 * floor_ms,
                        "%.2f ms vs floor %.2f ms" % (d["mean_ms"], floor_ms)))
        if r:
            acc.append(("decode at 4+%d >= 5x faster than the reference" % (c - 4), sp >= 5, "%.1fx" % sp))
    md.append("")
    variants = [("no_pdl", "decode_nopdl_%d.json", "PDL off"), ("split128", "decode_split128_%d.json", "split 128 keys"),
                ("split128u8", "decode_split128u8_%d.json", "split 128 keys, batches of 8")]
    got = {k: {c: load(f % c) for c in dec} for k, f, _ in variants}
    if any(v for g in got.values() for v in g.values()):
        md += ["The same decode runs with one thing changed (`SINKBENCH_CUDA_LEGACY=pdl`: programmatic dependent "
               "launch off; `SINKBENCH_CUDA_DECODE`: the decode attention's split shape), same run, mean ms/token:", "",
               "| cache | default | " + " | ".join(t for _, _, t in variants) + " |",
               "|---:|---:|" + "---:|" * len(variants)]
        for c, d in dec.items():
            cells = []
            for k, _, _ in variants:
                o = got[k].get(c)
                if o:
                    res["decode"][c][k + "_mean_ms"] = o["mean_ms"]
                cells.append("%.2f" % o["mean_ms"] if o else "-")
            md.append("| 4+%d | %.2f | %s |" % (c - 4, d["mean_ms"], " | ".join(cells)))
        md.append("")

rows = []
for c in (256, 512, 1024, 2048, 4096):
    s, r = load("sweep_stream_%d.json" % c), load("sweep_recompute_%d.json" % c)
    if s and r:
        rows.append((c, s["mean_ms"], r["mean_ms"], ref_stream.get(c, {}).get("ms_per_token"),
                     ref_rec.get(c, {}).get("ms_per_token")))
if rows:
    res["sweep"] = [{"cache": c, "streaming_ms": a, "recompute_ms": b, "reference_stream_ms": rs, "reference_recompute_ms": rr}
                    for c, a, b, rs, rr in rows]
    paper = {256: (31, 63), 4096: (65, 1411)}
    md += ["## StreamingLLM against re-computation (paper Fig. 10)", "",
           "| cache | StreamingLLM ms/token | re-computation ms/token | speedup | transformers: stream / recompute ms | paper (A6000): StreamingLLM / recompute |",
           "|---:|---:|---:|---:|---:|---:|"]
    with open(os.path.join(out, "fig10.dat"), "w") as f:
        f.write("# cache streaming_ms recompute_ms reference_stream_ms reference_recompute_ms\n")
        for c, a, b, rs, rr in rows:
            f.write("%d %.4f %.4f %s %s\n" % (c, a, b, rs if rs else "NaN", rr if rr else "NaN"))
            p = paper.get(c)
            md.append("| %d | %.2f | %.1f | %.1fx | %s / %s | %s |" % (c, a, b, b / a, "%.1f" % rs if rs else "-",
                                                                     "%.1f" % rr if rr else "-",
                                                                     "%d / %d" % p if p else "-"))
    md += ["", "![latency against cache size](fig10.png)", ""]

fl = load("flat.json")
if fl:
    try:
        import h5py  # optional: the per-token times
        with h5py.File(os.path.join(raw, "flat.h5"), "r") as f:
            st = f["step_ms"][:]
        import statistics
        a = statistics.median(st[2000:2500])
        b = statistics.median(st[-500:])
        a, b = float(a), float(b)
        res["flat"] = {"tokens": len(st), "median_ms_2000": a, "median_ms_end": b, "change": b / a - 1}
        acc.append(("decode flat (+-10%%) from token 2,000 to %d" % len(st), abs(b / a - 1) <= 0.10,
                    "%.2f -> %.2f ms" % (a, b)))
        md += ["Flatness (`sinks:4:2044`): median %.2f ms/token at token 2,000 and %.2f ms over the last 500 of %d tokens; "
               "the cache holds %d bytes throughout." % (a, b, len(st), fl["cache_bytes"]), ""]
    except Exception as e:  # noqa: BLE001
        md += ["Flatness: not summarized (%s)." % e, ""]

if acc:
    md += ["## Against the issue's acceptance", "", "| criterion | met | measured |", "|---|---|---|"]
    md += ["| %s | %s | %s |" % (a, verdict(ok), m) for a, ok, m in acc]
    md.append("")
res["acceptance"] = [{"criterion": a, "met": bool(ok), "measured": m} for a, ok, m in acc]
if not rev:  # the revision of whichever cell ran
    for n in sorted(os.listdir(raw)):
        if n.endswith(".json") and not n.startswith("ceilings"):
            rev = (load(n) or {}).get("git_rev")
            if rev:
                break
res["git_rev"] = rev
md.insert(3, "git revision `%s`." % rev)
with open(os.path.join(out, "bench_gpu.json"), "w") as f:
    json.dump(res, f, indent=1)
with open(os.path.join(out, "BENCH_GPU.md"), "w") as f:
    f.write("\n".join(md) + "\n")
print("\n".join(md))
