#!/usr/bin/env python3
"""MoDA attention benchmark, combined table.

Runs `moda bench attention --json` (our fused kernels: with depth, and the same kernels at L = 0),
then times PyTorch's scaled_dot_product_attention with the flash backend and with the cuDNN
backend (no depth: the L = 0 baselines) on the same shapes, forward and forward+backward, and
prints ONE table with ratios. A backend this torch build or GPU refuses shows as "-".

Timing: CUDA events around each call, median of --iters runs after --warmup runs, like the moda
command. FLOPs: 4 * B * Hq * d * visible keys forward (causal: T(T+1)/2 per head, plus T*L with
depth), 2.5x that backward.

Usage: python3 bench/attention_baseline.py --moda build-gpu/moda [--cases all|table2|lm|train] [--iters 10]
"""
import argparse
import datetime
import json
import math
import statistics
import subprocess
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def time_ms(fn, warmup, iters):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def sdpa_case(backend, B, T, Hq, Hk, d, warmup, iters):
    """SDPA through one backend (causal, bf16) on q [B,T,Hq,d], k,v [B,T,Hk,d] viewed as [B,H,T,d].
    Returns (fwd ms, fwd+bwd ms, GQA mode); (nan, nan, "refused") when the backend cannot run it."""
    dev = torch.device("cuda")
    q = torch.randn(B, T, Hq, d, device=dev, dtype=torch.bfloat16).transpose(1, 2).requires_grad_()
    k = torch.randn(B, T, Hk, d, device=dev, dtype=torch.bfloat16).transpose(1, 2).requires_grad_()
    v = torch.randn(B, T, Hk, d, device=dev, dtype=torch.bfloat16).transpose(1, 2).requires_grad_()
    dout = torch.randn(B, Hq, T, d, device=dev, dtype=torch.bfloat16)
    mode = "enable_gqa"

    def attn(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=(Hq != Hk))

    def attn_fwdbwd(q, k, v):
        # Fresh gradients each call, as the moda kernels produce: .backward() would accumulate into
        # q.grad, k.grad, v.grad from the second call on, adding three elementwise kernels per call.
        return torch.autograd.grad(attn(q, k, v), (q, k, v), dout)

    try:
        with sdpa_kernel([backend]):
            try:
                attn_fwdbwd(q, k, v)
            except RuntimeError:
                # The backend refused grouped heads: repeat K, V outside the timed region instead.
                mode = "repeat_kv"
                G = Hq // Hk
                k = k.detach().repeat_interleave(G, dim=1).requires_grad_()
                v = v.detach().repeat_interleave(G, dim=1).requires_grad_()

                def attn(q, k, v):  # noqa: F811
                    return F.scaled_dot_product_attention(q, k, v, is_causal=True)

            fwd = time_ms(lambda: attn(q, k, v), warmup, iters)
            fwdbwd = time_ms(lambda: attn_fwdbwd(q, k, v), warmup, iters)
    except RuntimeError as e:
        print(f"# {backend.name} refused B={B} T={T} Hq={Hq} Hk={Hk} d={d}: {str(e).splitlines()[0][:120]}",
              file=sys.stderr)
        fwd, fwdbwd, mode = math.nan, math.nan, "refused"
    del q, k, v, dout
    torch.cuda.empty_cache()
    return fwd, fwdbwd, mode


def driver_version():
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, check=True).stdout.split()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--moda", default="build-gpu/moda", help="path of the moda binary")
    ap.add_argument("--cases", default="all", choices=["all", "table2", "lm", "train"])
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--only", type=int, nargs="*", default=[], help="indices into the case list")
    ap.add_argument("--json-out", help="also write the combined rows as JSON here")
    a = ap.parse_args()

    cmd = [a.moda, "bench", "attention", "--json", "--cases", a.cases, "--iters", str(a.iters),
           "--warmup", str(a.warmup)] + (["--only"] + [str(i) for i in a.only] if a.only else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = json.loads(out[out.index("["):])

    for r in rows:
        for name, backend in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
            r[f"{name}_fwd_ms"], r[f"{name}_fwdbwd_ms"], r[f"{name}_mode"] = sdpa_case(
                backend, r["B"], r["T"], r["Hq"], r["Hk"], r["d"], a.warmup, a.iters)

    gpu = rows[0]["gpu"] if rows else "?"
    print(f"# MoDA attention vs torch flash and cuDNN SDPA — {gpu}, {datetime.date.today()}, torch {torch.__version__}, "
          f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, driver {driver_version()}; causal bf16, median of {a.iters}; copy bandwidth "
          f"{rows[0]['copy_GBps']:.0f} GB/s" if rows else "# no rows")
    print("# ratios: L0/flash, L0/cudnn and MoDA/flash on fwd+bwd; extra = MoDA - L0 (fwd+bwd); floor = depth K,V "
          "bytes (fwd read, bwd read + grads written) / copy bandwidth; split = MoDA through our cuDNN wrapper for the "
          "sequence keys + our depth kernels (train.attention_l0 cudnn/auto), split/flash over flash WITHOUT depth")
    hdr = ("| B | T | Hq | G | L | MoDA fwd ms | MoDA f+b ms | TFLOP/s | L0 fwd ms | L0 f+b ms | flash fwd ms | "
           "flash f+b ms | cudnn fwd ms | cudnn f+b ms | L0/flash | L0/cudnn | MoDA/flash | extra ms | floor ms | "
           "extra/floor | split f+b ms | split/flash |")
    print(hdr)
    print("|" + "---|" * (hdr.count("|") - 1))
    for r in rows:
        extra = r["fwdbwd_ms"] - r["l0_fwdbwd_ms"]
        floor = r["depth_floor_fwdbwd_ms"]
        split = r.get("moda_split_fwdbwd_ms") or float("nan")
        print(f"| {r['B']} | {r['T']} | {r['Hq']} | {r['G']} | {r['L']} | {r['fwd_ms']:.3f} | {r['fwdbwd_ms']:.3f} | "
              f"{r['fwdbwd_tflops']:.0f} | {r['l0_fwd_ms']:.3f} | {r['l0_fwdbwd_ms']:.3f} | {r['flash_fwd_ms']:.3f} | "
              f"{r['flash_fwdbwd_ms']:.3f} | {r['cudnn_fwd_ms']:.3f} | {r['cudnn_fwdbwd_ms']:.3f} | "
              f"{r['l0_fwdbwd_ms'] / r['flash_fwdbwd_ms']:.3f} | {r['l0_fwdbwd_ms'] / r['cudnn_fwdbwd_ms']:.3f} | "
              f"{r['fwdbwd_ms'] / r['flash_fwdbwd_ms']:.3f} | {extra:.3f} | {floor:.3f} | "
              f"{extra / floor if floor > 0 else float('nan'):.2f} | {split:.3f} | {split / r['flash_fwdbwd_ms']:.3f} |")
    for name in ("flash", "cudnn"):
        print(f"# {name} GQA mode: {', '.join(sorted({r[name + '_mode'] for r in rows}))}")
    if a.json_out:
        meta = {"date": str(datetime.date.today()), "gpu": gpu, "driver": driver_version(), "torch": torch.__version__,
                "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(), "iters": a.iters,
                "warmup": a.warmup, "command": " ".join(sys.argv)}
        with open(a.json_out, "w") as f:
            clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]
            json.dump({**meta, "rows": clean}, f, indent=1)  # a refused backend's times are null
    return 0


if __name__ == "__main__":
    sys.exit(main())
