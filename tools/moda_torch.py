#!/usr/bin/env python3
"""A MoDA language model in plain PyTorch, loading what `moda checkpoint export` writes.

Written from docs/model.md ("Conventions for reimplementations") rather than from moda's code, so
that tests/cli/torch_bridge.sh, which requires its logits and validation loss to equal moda's,
checks the document as much as this file. Every variant (sequence, depth_kv, depth_kv_ffn,
depth_kv_ffn_attn), norm placement (pre, post, reordered), tied or untied head, QK-norm and
biases on or off. Needs torch (1.13, Debian 12's python3-torch, or 2.x) and numpy; the
safetensors file is parsed here (json + torch.frombuffer), so the safetensors package is not.

    python3 tools/moda_torch.py DIR --tokens SHARD.bin... [--seq-len T] [--batch N]
                                [--dtype float32|float64] [--dump-logits FILE] [--json]

prints the validation loss of the shards (the windows `moda eval` uses) and a summary of the
first batch's logits. In Python:

    model = MoDAModel.from_pretrained(DIR)        # float32, eval mode
    logits = model(ids)                           # ids [B, T] int64 -> [B, T, V]
    loss = model.loss(ids, targets)               # mean cross-entropy over targets != -1
    logprob = model.loglikelihood(context, continuation)   # lists of ids -> float
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FORMAT_VERSION = 1  # the `format_version` of config.json this file reads

# ---- safetensors (https://huggingface.co/docs/safetensors): 8-byte little-endian header length,
# a JSON header {name: {dtype, shape, data_offsets}}, then the raw little-endian tensor bytes.

_DTYPES = {"F64": torch.float64, "F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16,
           "I64": torch.int64, "I32": torch.int32}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_len])
    base = 8 + header_len
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = _DTYPES[info["dtype"]]
        # bytearray: a writable copy (frombuffer warns about read-only buffers)
        flat = torch.frombuffer(bytearray(data[base + begin:base + end]), dtype=dtype) if end > begin \
            else torch.empty(0, dtype=dtype)
        out[name] = flat.reshape(info["shape"])
    return out


def write_safetensors(path, tensors):
    names = {torch.float32: "F32", torch.float64: "F64", torch.int32: "I32", torch.int64: "I64"}
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        blob = t.detach().contiguous().cpu().numpy().tobytes()
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


# ---- the model (docs/model.md)

class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        # y = x / sqrt(mean(x^2) + eps) * weight: eps inside the root, the weight applied last
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight


def rope(x, theta):
    """Rotary embedding of x [B, T, H, d] at positions 0..T-1, half-split pairing: element i is
    rotated with element i + d/2 by the angle pos * theta^(-2i/d)."""
    d = x.shape[-1]
    half = d // 2
    inv_freq = theta ** (-2.0 * torch.arange(half, dtype=torch.float64) / d)
    angle = torch.arange(x.shape[1], dtype=torch.float64)[:, None] * inv_freq[None, :]  # [T, d/2]
    cos = angle.cos().to(x.device, x.dtype)[None, :, None, :]  # angles in f64 on the host, then moved
    sin = angle.sin().to(x.device, x.dtype)[None, :, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def moda_attention(q, k, v, depth):
    """q [B, T, Hq, d]; k, v [B, T, Hk, d] this layer's sequence keys and values; depth: the
    (key, value) pairs [B, T, Hk, d] that earlier layers wrote. Query (t, h) scores the causal
    sequence keys 0..t and the depth keys of its own token t under one softmax, scale 1/sqrt(d);
    query head h reads KV head h // (Hq / Hk)."""
    B, T, Hq, d = q.shape
    group = Hq // k.shape[2]
    k, v = k.repeat_interleave(group, dim=2), v.repeat_interleave(group, dim=2)
    scale = 1.0 / math.sqrt(d)
    seq_scores = torch.einsum("bthd,bshd->bhts", q, k) * scale
    causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    seq_scores = seq_scores.masked_fill(~causal, float("-inf"))
    if not depth:
        return torch.einsum("bhts,bshd->bthd", torch.softmax(seq_scores, dim=-1), v)
    dk = torch.stack([pair[0] for pair in depth], dim=3).repeat_interleave(group, dim=2)  # [B, T, Hq, n, d]
    dv = torch.stack([pair[1] for pair in depth], dim=3).repeat_interleave(group, dim=2)
    depth_scores = torch.einsum("bthd,bthnd->bhtn", q, dk) * scale
    p = torch.softmax(torch.cat([seq_scores, depth_scores], dim=-1), dim=-1)
    return (torch.einsum("bhts,bshd->bthd", p[..., :T], v) +
            torch.einsum("bhtn,bthnd->bthd", p[..., T:], dv))


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = c["n_heads"], c["n_kv_heads"], c["head_dim"]
        self.theta = c["rope_theta"]
        D, qd, kvd = c["d_model"], self.heads * self.head_dim, self.kv_heads * self.head_dim
        self.q_proj = nn.Linear(D, qd, bias=c["bias"])
        self.k_proj = nn.Linear(D, kvd, bias=c["bias"])
        self.v_proj = nn.Linear(D, kvd, bias=c["bias"])
        self.o_proj = nn.Linear(qd, D, bias=c["bias"])
        # QK-norm spans the whole projection (all heads together), as in OLMo2
        self.q_norm = RMSNorm(qd, c["norm_eps"]) if c["qk_norm"] else None
        self.k_norm = RMSNorm(kvd, c["norm_eps"]) if c["qk_norm"] else None

    def key(self, k):
        """A key projection [B, T, Hk*d] as the stream holds it: k_norm, then RoPE at its token's position.
        Depth keys of this layer's depth projections take the same path (and this layer's k_norm)."""
        if self.k_norm is not None:
            k = self.k_norm(k)
        return rope(k.reshape(k.shape[0], k.shape[1], self.kv_heads, self.head_dim), self.theta)

    def value(self, v):
        return v.reshape(v.shape[0], v.shape[1], self.kv_heads, self.head_dim)

    def forward(self, h, depth):
        """h: the sub-layer input [B, T, D]; depth: pairs of earlier layers. Returns the output and
        this layer's sequence (key, value)."""
        B, T, _ = h.shape
        q = self.q_proj(h)
        if self.q_norm is not None:
            q = self.q_norm(q)
        q = rope(q.reshape(B, T, self.heads, self.head_dim), self.theta)
        k, v = self.key(self.k_proj(h)), self.value(self.v_proj(h))
        o = moda_attention(q, k, v, depth)
        return self.o_proj(o.reshape(B, T, self.heads * self.head_dim)), (k, v)


class DepthKV(nn.Module):
    """A depth K,V projection of a sub-layer input (depth_kv_ffn: the FFN's, depth_kv_ffn_attn: also
    the attention's); keys pass through the writing layer's k_norm and RoPE."""

    def __init__(self, c):
        super().__init__()
        kvd = c["n_kv_heads"] * c["head_dim"]
        self.k_proj = nn.Linear(c["d_model"], kvd, bias=c["depth_kv_bias"])
        self.v_proj = nn.Linear(c["d_model"], kvd, bias=c["depth_kv_bias"])

    def forward(self, h, attn):
        return attn.key(self.k_proj(h)), attn.value(self.v_proj(h))


class SwiGLU(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate_up_proj = nn.Linear(c["d_model"], 2 * c["ffn_hidden"], bias=c["bias"])  # rows [gate | up]
        self.down_proj = nn.Linear(c["ffn_hidden"], c["d_model"], bias=c["bias"])

    def forward(self, h):
        gate, up = self.gate_up_proj(h).chunk(2, dim=-1)
        return self.down_proj(F.silu(gate) * up)


VARIANTS = ("sequence", "depth_kv", "depth_kv_ffn", "depth_kv_ffn_attn")
NORMS = ("pre", "post", "reordered")


class Block(nn.Module):
    def __init__(self, c, layer):
        super().__init__()
        self.variant, self.placement = c["variant"], c["norm"]
        last = layer == c["n_layers"] - 1
        build_depth = not last or c["depth_proj_last_layer"]  # built but unused in the last layer with the flag
        self.computes_depth = not last  # the last layer's pairs would feed no later layer
        self.attn_norm = RMSNorm(c["d_model"], c["norm_eps"])
        self.attn = Attention(c)
        self.attn_depth = DepthKV(c) if self.variant == "depth_kv_ffn_attn" and build_depth else None
        self.mlp_norm = RMSNorm(c["d_model"], c["norm_eps"])
        self.mlp = SwiGLU(c)
        self.ffn_depth = DepthKV(c) if self.variant in ("depth_kv_ffn", "depth_kv_ffn_attn") and build_depth else None

    def sublayer_input(self, x, norm):
        return norm(x) if self.placement == "pre" else x  # post and reordered: the residual itself

    def sublayer_output(self, x, f, norm):
        if self.placement == "pre":
            return x + f
        if self.placement == "post":
            return norm(x + f)
        return x + norm(f)  # reordered (OLMo2)

    def forward(self, x, depth):
        """x: the residual stream [B, T, D]; depth: the (key, value) pairs earlier layers wrote, in
        write order. This layer reads them all and appends the pairs it writes."""
        h = self.sublayer_input(x, self.attn_norm)
        a, seq_kv = self.attn(h, list(depth))
        if self.variant in ("depth_kv", "depth_kv_ffn"):
            depth.append(seq_kv)  # later layers reread this layer's sequence K,V at the same token
        elif self.variant == "depth_kv_ffn_attn" and self.computes_depth:
            depth.append(self.attn_depth(h, self.attn))  # a separate projection of the attention input
        x = self.sublayer_output(x, a, self.attn_norm)

        h = self.sublayer_input(x, self.mlp_norm)
        if self.ffn_depth is not None and self.computes_depth:
            depth.append(self.ffn_depth(h, self.attn))
        return self.sublayer_output(x, self.mlp(h), self.mlp_norm)


class MoDAModel(nn.Module):
    """Parameter names are moda's state-dict names (docs/model.md, "Parameters")."""

    def __init__(self, config):
        super().__init__()
        c = config
        if c["variant"] not in VARIANTS or c["norm"] not in NORMS:
            raise ValueError(f"unknown variant {c['variant']!r} or norm {c['norm']!r}")
        self.config = c
        self.embed = nn.Embedding(c["vocab_size"], c["d_model"])
        self.blocks = nn.ModuleList([Block(c, layer) for layer in range(c["n_layers"])])
        self.final_norm = RMSNorm(c["d_model"], c["norm_eps"])
        self.lm_head = None if c["tie_embeddings"] else nn.Linear(c["d_model"], c["vocab_size"], bias=False)

    @classmethod
    def from_pretrained(cls, folder, dtype=torch.float32):
        with open(os.path.join(folder, "config.json")) as f:
            config = json.load(f)
        if config.get("format") != "moda" or config.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{folder}/config.json: not a moda export of format_version {FORMAT_VERSION} "
                             f"(format {config.get('format')!r}, version {config.get('format_version')!r})")
        model = cls(config["model"])
        state = read_safetensors(os.path.join(folder, "model.safetensors"))
        model.load_state_dict({name: t.to(torch.float32) for name, t in state.items()}, strict=True)
        return model.to(dtype).eval()

    def forward(self, ids):
        """ids [B, T] int64 -> logits [B, T, V]."""
        limit = self.config["max_seq_len"]
        if limit and ids.shape[1] > limit:
            raise ValueError(f"sequence length {ids.shape[1]} exceeds model.max_seq_len = {limit}")
        x = self.embed(ids)
        depth = []
        for block in self.blocks:
            x = block(x, depth)
        x = self.final_norm(x)
        head = self.embed.weight if self.lm_head is None else self.lm_head.weight
        return x @ head.t()

    def loss(self, ids, targets):
        """Mean cross-entropy over the targets that are not -1 (moda's ignore index)."""
        logits = self(ids)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(), targets.reshape(-1), ignore_index=-1)

    @torch.no_grad()
    def loglikelihood(self, context, continuation):
        """log P(continuation | context) in nats, both lists of token ids: what a harness's
        loglikelihood request asks (docs/interop.md). The context is cut from the left to fit max_seq_len."""
        ids = list(context) + list(continuation)
        limit = self.config["max_seq_len"] or len(ids)
        ids = ids[-(limit + 1):]
        inputs, targets = torch.tensor([ids[:-1]]), torch.tensor([ids[1:]])
        logprobs = torch.log_softmax(self(inputs).double(), dim=-1)
        picked = logprobs[0, -len(continuation):].gather(-1, targets[0, -len(continuation):, None])
        return float(picked.sum())


# ---- evaluation over moda token shards (docs/data-formats.md)

def read_shard(path):
    """An llm.c token shard: 256 int32 header (magic 20240520, version 1: uint16 / 2: uint32 tokens, count)."""
    with open(path, "rb") as f:
        magic, version, count = struct.unpack("<3i", f.read(1024)[:12])
        if magic != 20240520 or version not in (1, 2):
            raise ValueError(f"{path}: not a moda token shard (magic {magic}, version {version})")
        tokens = np.frombuffer(f.read(), dtype="<u2" if version == 1 else "<u4")
    if len(tokens) != count:
        raise ValueError(f"{path}: header says {count} tokens, file holds {len(tokens)}")
    return torch.from_numpy(tokens.astype(np.int64))


def eval_batches(shards, seq_len, batch):
    """The batches `moda eval` reads (data::EvalLoader, one rank): each shard cut into windows at
    0, T, 2T, ...; inputs tokens [jT, jT+T), targets [jT+1, jT+T+1); a short last window padded with
    input 0 and target -1; B consecutive windows (across shards) per batch, missing rows all -1."""
    windows = []
    for tokens in shards:
        predictable = len(tokens) - 1
        for start in range(0, max(predictable, 0), seq_len):
            n = min(seq_len, predictable - start)
            windows.append((tokens[start:start + n], tokens[start + 1:start + n + 1]))
    for first in range(0, len(windows), batch):
        ids = torch.zeros(batch, seq_len, dtype=torch.int64)
        targets = torch.full((batch, seq_len), -1, dtype=torch.int64)
        for row, (inp, tgt) in enumerate(windows[first:first + batch]):
            ids[row, :len(inp)], targets[row, :len(tgt)] = inp, tgt
        yield ids, targets


def main(argv=None):
    p = argparse.ArgumentParser(description="Evaluate a `moda checkpoint export` folder in PyTorch.")
    p.add_argument("folder", help="the folder `moda checkpoint export` wrote")
    p.add_argument("--tokens", nargs="+", required=True, help="token shards (.bin), evaluated as one set in this order")
    p.add_argument("--seq-len", type=int, default=0, help="window length (default: config.json's seq_len)")
    p.add_argument("--batch", type=int, default=8, help="windows per forward (default 8, as moda eval)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--dump-logits", metavar="FILE", help="write the first batch's ids, targets and logits (safetensors)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)

    torch.set_grad_enabled(False)
    model = MoDAModel.from_pretrained(a.folder, getattr(torch, a.dtype))
    with open(os.path.join(a.folder, "config.json")) as f:
        seq_len = a.seq_len or json.load(f)["seq_len"]
    total, tokens, first = 0.0, 0, None
    for ids, targets in eval_batches([read_shard(s) for s in a.tokens], seq_len, a.batch):
        logits = model(ids)
        if first is None:
            first = logits
            if a.dump_logits:
                write_safetensors(a.dump_logits, {"ids": ids.int(), "targets": targets.int(), "logits": logits.float()})
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(), targets.reshape(-1),
                                       ignore_index=-1, reduction="sum"))
        tokens += int((targets != -1).sum())
    if tokens == 0:
        sys.exit("no tokens to predict in " + " ".join(a.tokens))
    loss = total / tokens
    summary = {"loss": loss, "ppl": math.exp(loss), "tokens": tokens,
               "first_batch_logits": {"shape": list(first.shape), "mean": float(first.mean()),
                                      "std": float(first.std()), "max_abs": float(first.abs().max())}}
    if a.json:
        print(json.dumps(summary))
    else:
        s = summary["first_batch_logits"]
        print(f"loss {loss:.6f}  perplexity {summary['ppl']:.3f}  tokens {tokens}")
        print(f"first batch logits {s['shape']}: mean {s['mean']:.6f} std {s['std']:.6f} max |x| {s['max_abs']:.6f}")


if __name__ == "__main__":
    main()
