#!/usr/bin/env python3
"""Step time of fully sharded (ZeRO-3) training vs the number of GPUs: a model, not a measurement.

Inputs: the parameter count P and the measured single-GPU training rate (tokens/s) of a config,
and interconnect figures (bus bandwidth as nccl-tests reports it, per-hop latency). Per step
every GPU all-gathers the bf16 parameters twice (forward, and again in backward after they were
freed) and reduce-scatters the gradients once (fp32 or bf16), one collective per parameter group
(G groups). A ring collective of S bytes over N GPUs costs S (N - 1) / N / busbw + (N - 1) alpha.
Compute per GPU is its tokens / the single-GPU rate. With overlap (a one-group look-ahead) the
step costs max(compute, communication) plus the first gather and last reduce that cannot hide;
without overlap (moda today, docs/distributed.md) it costs their sum.

    python3 tools/scaling_model.py --params 0.67e9 --groups 38 --tokens-per-s 67083 [--markdown]
"""
import argparse


def collective_s(nbytes, n, busbw, alpha, count):
    if n == 1:
        return 0.0
    return nbytes * (n - 1) / n / busbw + count * (n - 1) * alpha


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", type=float, required=True)
    ap.add_argument("--groups", type=int, required=True, help="parameter groups (blocks + 2)")
    ap.add_argument("--tokens-per-s", type=float, required=True, help="measured single-GPU training rate")
    ap.add_argument("--seq-len", type=int, default=4096)
    ap.add_argument("--seqs-per-gpu", type=int, default=8, help="weak scaling: sequences per GPU per step")
    ap.add_argument("--global-seqs", type=int, default=1024, help="fixed global batch: sequences per step")
    ap.add_argument("--reduce-bytes", type=int, default=4, help="4: fp32 reduce-scatter, 2: bf16")
    ap.add_argument("--intra-busbw", type=float, default=360e9, help="bytes/s, 8 GPUs on NVLink")
    ap.add_argument("--inter-busbw", type=float, default=45e9, help="bytes/s per GPU across nodes")
    ap.add_argument("--intra-alpha", type=float, default=2e-6)
    ap.add_argument("--inter-alpha", type=float, default=6e-6)
    ap.add_argument("--gpus", default="8,64,512")
    a = ap.parse_args()

    print("| regime | GPUs | tokens/GPU/step | compute ms | comm ms (bandwidth + latency) | "
          "step ms, overlapped | efficiency | step ms, not overlapped | efficiency |")
    print("|---|---|---|---|---|---|---|---|---|")
    for regime in ("weak", "fixed"):
        for n in (int(x) for x in a.gpus.split(",")):
            seqs = a.seqs_per_gpu if regime == "weak" else a.global_seqs / n
            tokens = seqs * a.seq_len
            compute = tokens / a.tokens_per_s
            busbw, alpha = (a.intra_busbw, a.intra_alpha) if n <= 8 else (a.inter_busbw, a.inter_alpha)
            gather = collective_s(2 * a.params, n, busbw, alpha, a.groups)
            reduce = collective_s(a.reduce_bytes * a.params, n, busbw, alpha, a.groups)
            comm = 2 * gather + reduce
            latency = 3 * a.groups * (n - 1) * alpha if n > 1 else 0.0
            exposed = (gather + reduce) / a.groups
            overlapped = max(compute, comm) + exposed
            serial = compute + comm
            label = f"{a.seqs_per_gpu} seq/GPU" if regime == "weak" else f"{a.global_seqs} seq global"
            print(f"| {label} | {n} | {tokens:,.0f} | {compute * 1e3:,.0f} | {comm * 1e3:,.1f} "
                  f"({(comm - latency) * 1e3:,.1f} + {latency * 1e3:,.1f}) | {overlapped * 1e3:,.0f} | "
                  f"{compute / overlapped:.0%} | {serial * 1e3:,.0f} | {compute / serial:.0%} |")


if __name__ == "__main__":
    main()
