#!/usr/bin/env python3
"""The PyTorch baseline of the whole training step (issue 15): the model of a moda config written
in plain PyTorch (tools/moda_torch.py, the module the export bridge tests against moda), trained
the way a PyTorch user would make it fast, so that `moda train` tokens/s can be read as a ratio
to it on the same machine in the same sitting:

  * bf16 autocast, fused AdamW (torch >= 2), torch.compile of the model (--compile, default on CUDA);
  * attention: `sequence` through scaled_dot_product_attention (flash backend on CUDA, GQA);
    MoDA through FlexAttention over [sequence keys | the token's depth keys] with a block mask
    (torch >= 2.5). On the CPU, or with --attention reference, the readable einsum version.

    python3 bench/torch_train_baseline.py --config experiments/gpu-125m.json [--set model.K=V ...]
        [--moda build/moda] [--steps 30] [--warmup 10] [--micro-batch N] [--device cuda|cpu]
        [--attention auto|reference] [--no-compile] [--json OUT]

The resolved model config and the FLOPs per token come from `moda params --json` (so MFU is
counted exactly as moda counts it); training tokens from the config's data.train shards, random
windows. Prints one line per timed run and, with --json, the record for bench/results/. Before
timing, the fast attention is checked against the reference on random inputs (bf16 tolerance).
"""
import argparse
import glob
import json
import math
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import moda_torch  # noqa: E402  (tools/moda_torch.py)

PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense bf16 tensor-core peak


def moda_params(moda, config, sets):
    cmd = [moda, "params", "--config", config, "--json"]
    for s in sets:
        cmd += ["--set", s]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def resolved_sections(path, sets):
    """The config file's data / optim / train sections with the --set overrides applied (values
    parsed as JSON when they parse, as moda does); the model section comes from `moda params`."""
    with open(path) as f:
        cfg = json.load(f)
    for s in sets:
        key, _, text = s.partition("=")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        *parents, leaf = key.split(".")
        node = cfg
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return cfg


def train_tokens(patterns):
    patterns = [patterns] if isinstance(patterns, str) else patterns
    files = sorted(f for p in patterns for f in glob.glob(p))
    if not files:
        raise SystemExit(f"data.train: no shard matches {patterns}")
    return torch.cat([moda_torch.read_shard(f) for f in files])


# ---- fast attention ------------------------------------------------------------------------

def sdpa_attention(q, k, v):
    """Causal GQA attention, q [B, T, Hq, d], k, v [B, T, Hk, d]: flash SDPA on CUDA."""
    group = q.shape[2] // k.shape[2]
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    if group > 1:
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2)


class FlexMoDA:
    """MoDA through FlexAttention: per query token t the keys are the causal sequence keys 0..t
    and the n depth keys of token t, laid out after the T sequence keys as token-major blocks
    (key T + t*n + j). One block mask per (T, n), built once."""

    def __init__(self):
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
        self.create_block_mask = create_block_mask
        self.flex = torch.compile(flex_attention)
        self.masks = {}

    def mask(self, T, n, device):
        key = (T, n)
        if key not in self.masks:
            def mask_mod(b, h, q_idx, kv_idx):
                seq = (kv_idx < T) & (kv_idx <= q_idx)
                dep = (kv_idx >= T) & ((kv_idx - T) // n == q_idx)
                return seq | dep
            self.masks[key] = self.create_block_mask(mask_mod, None, None, T, T + T * n, device=device)
        return self.masks[key]

    def __call__(self, q, k, v, depth):
        if not depth:
            return sdpa_attention(q, k, v)
        B, T, Hq, d = q.shape
        n = len(depth)
        dk = torch.stack([p[0] for p in depth], dim=2).reshape(B, T * n, k.shape[2], d)  # token-major
        dv = torch.stack([p[1] for p in depth], dim=2).reshape(B, T * n, k.shape[2], d)
        keys = torch.cat([k, dk], dim=1).transpose(1, 2)
        values = torch.cat([v, dv], dim=1).transpose(1, 2)
        o = self.flex(q.transpose(1, 2), keys, values, block_mask=self.mask(T, n, q.device),
                      enable_gqa=Hq != k.shape[2])
        return o.transpose(1, 2)


def fast_attention_or_none(device):
    if device.type != "cuda":
        return None
    try:
        return FlexMoDA()
    except ImportError:  # torch < 2.5: no FlexAttention
        return None


def check_attention(fast, device):
    """The fast path against the readable one on random bf16 inputs, with and without depth."""
    g = torch.Generator(device="cpu").manual_seed(0)
    B, T, Hq, Hk, d = 2, 256, 4, 2, 64
    for n in (0, 3):
        q = torch.randn(B, T, Hq, d, generator=g).to(device, torch.bfloat16)
        k = torch.randn(B, T, Hk, d, generator=g).to(device, torch.bfloat16)
        v = torch.randn(B, T, Hk, d, generator=g).to(device, torch.bfloat16)
        depth = [(torch.randn(B, T, Hk, d, generator=g).to(device, torch.bfloat16),
                  torch.randn(B, T, Hk, d, generator=g).to(device, torch.bfloat16)) for _ in range(n)]
        ref = moda_torch.moda_attention(q.float(), k.float(), v.float(), [(a.float(), b.float()) for a, b in depth])
        out = fast(q, k, v, depth).float()
        err = ((out - ref).norm() / ref.norm()).item()
        if not err < 2e-2:
            raise SystemExit(f"fast attention differs from the reference (depth {n}): relative L2 {err:.2e}")


# ---- model and step --------------------------------------------------------------------------

def init_weights(model, std, seed):
    torch.manual_seed(seed)
    for name, p in model.named_parameters():
        with torch.no_grad():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            elif name.endswith(".bias"):
                p.zero_()
            else:
                p.normal_(0.0, std)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--set", action="append", default=[], help="model.K=V / data.K=V / train.K=V, as moda takes it")
    ap.add_argument("--moda", default="build/moda")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps first (compilation)")
    ap.add_argument("--micro-batch", type=int, default=0, help="sequences per step (default: train.micro_batch)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--attention", choices=["auto", "reference"], default="auto")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()

    info = moda_params(a.moda, a.config, a.set)
    cfg = resolved_sections(a.config, a.set)
    model_cfg = info["model"]
    flops_per_token = info["mfu_flops_per_token"]["palm"]  # moda's MFU convention (docs/training.md)
    T = int(info["seq_len"])
    B = a.micro_batch or int(cfg["train"]["micro_batch"])
    device = torch.device(a.device)
    torch.manual_seed(0)

    fast = fast_attention_or_none(device) if a.attention == "auto" else None
    if fast is not None:
        check_attention(fast, device)
        moda_torch.moda_attention = fast  # Attention.forward looks it up at call time
    model = moda_torch.MoDAModel(model_cfg).to(device)
    init_weights(model, model_cfg["init_std"], 1)
    n_params = sum(p.numel() for p in model.parameters())
    if n_params != info["params"]:
        raise SystemExit(f"the PyTorch model has {n_params} parameters, moda counts {info['params']}")
    o = cfg["optim"]
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": o.get("weight_decay", 0.0)}, {"params": no_decay, "weight_decay": 0.0}]
    kw = {"fused": True} if device.type == "cuda" and int(torch.__version__.split(".")[0]) >= 2 else {}
    opt = torch.optim.AdamW(groups, lr=o["lr"], betas=(o.get("beta1", 0.9), o.get("beta2", 0.95)),
                            eps=o.get("eps", 1e-8), **kw)
    compiled = device.type == "cuda" and not a.no_compile and hasattr(torch, "compile")
    step_model = torch.compile(model) if compiled else model

    tokens = train_tokens(cfg["data"]["train"])
    if int(tokens.max()) >= model_cfg["vocab_size"]:
        raise SystemExit(f"data.train: token id {int(tokens.max())} >= vocab_size {model_cfg['vocab_size']}")
    gen = torch.Generator().manual_seed(1)
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    clip = o.get("grad_clip", 0.0)

    def batch():
        starts = torch.randint(0, len(tokens) - T - 1, (B,), generator=gen)
        rows = torch.stack([tokens[s:s + T + 1] for s in starts.tolist()])
        return rows[:, :-1].to(device), rows[:, 1:].to(device)

    def step():
        ids, targets = batch()
        with autocast:
            logits = step_model(ids)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    first = None
    for _ in range(a.warmup):
        loss = step()
        first = first if first is not None else float(loss)
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    sync()
    seconds = time.perf_counter() - start
    last = float(loss)
    if not math.isfinite(last):
        raise SystemExit(f"non-finite loss {last}")
    tok_s = a.steps * B * T / seconds
    gpu = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    peak = next((v for k, v in PEAK_BF16.items() if k in gpu), None)
    mfu = tok_s * flops_per_token / peak if peak else None
    mem = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    attn = "reference (einsum)" if fast is None else ("sdpa" if model_cfg["variant"] == "sequence" else "sdpa + flex")
    print(f"torch {torch.__version__} {gpu}: {model_cfg['variant']} {model_cfg['n_layers']} layers, {n_params / 1e6:.2f}M "
          f"params, B {B} T {T}, attention {attn}, compile {compiled}: {tok_s:,.0f} tok/s"
          + (f", MFU {100 * mfu:.1f} %" if mfu else "") + (f", peak {mem:.1f} GiB" if mem else "")
          + f", loss {first if first is not None else last:.3f} -> {last:.3f}")
    if a.json:
        record = {"date": time.strftime("%Y-%m-%d"), "gpu": gpu, "torch": torch.__version__,
                  "cuda": torch.version.cuda, "config": a.config, "set": a.set, "variant": model_cfg["variant"],
                  "params": n_params, "micro_batch": B, "seq_len": T, "attention": attn, "compile": compiled,
                  "steps": a.steps, "warmup": a.warmup, "seconds": seconds, "tokens_per_s": tok_s, "mfu": mfu,
                  "peak_memory_gib": mem, "loss_first": first, "loss_last": last}
        with open(a.json, "w") as f:
            json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()
