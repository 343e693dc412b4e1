"""Speed of the JAX all-MiniLM-L6-v2 encoder behind ``jaxpoison.datasets.embed_texts``.

Anchor: the same forward pass in NumPy (float32, batched matmuls through NumPy's BLAS),
there being no PyTorch on the reference machine. Per padded length (one bucket of
``embed_texts``): JAX compile time apart from run time, texts/s, and the ratio. Then the
end-to-end time of ``embed_texts`` (tokenisation, bucketing, encoding; cache off) on real
Amazon Fine Foods reviews.

    python benchmarks/datasets.py [--quick]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import print_table, time_call, time_jax  # noqa: E402

from jaxpoison.datasets import embed_texts, load_fine_food_reviews  # noqa: E402
from jaxpoison.datasets import text_embedding as te  # noqa: E402


def _np_ln(x, p, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * p["scale"] + p["bias"]


def _np_erf(x):
    from scipy.special import erf

    return erf(x)


def numpy_forward(params, ids, mask, heads=12):
    """float32 NumPy reference of the full forward pass (embeddings, 6 layers, pooling)."""
    P = params
    B, L = ids.shape
    x = P["word"][ids] + P["position"][:L] + P["token_type"][0]
    x = _np_ln(x, P["embed_norm"])
    H = x.shape[-1]
    d = H // heads
    bias = np.where(mask[:, None, None, :] > 0, 0.0, -1e30).astype(np.float32)
    for p in P["layers"]:
        def proj(name, h, p=p):
            return h @ p[name]["w"] + p[name]["b"]
        q, k, v = (proj(n, x).reshape(B, L, heads, d).transpose(0, 2, 1, 3)
                   for n in ("query", "key", "value"))
        s = q @ k.transpose(0, 1, 3, 2) / np.float32(math.sqrt(d)) + bias
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(0, 2, 1, 3).reshape(B, L, H)
        h = _np_ln(x + proj("attn_out", ctx), p["attn_norm"])
        f = proj("ffn_in", h)
        f = 0.5 * f * (1 + _np_erf(f / np.float32(math.sqrt(2))))
        x = _np_ln(h + proj("ffn_out", f), p["ffn_norm"])
    m = mask[..., None].astype(np.float32)
    pooled = (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return pooled / np.linalg.norm(pooled, axis=-1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    import jax

    model = te.load_minilm()
    np_params = jax.tree_util.tree_map(np.asarray, model.params)
    batch = 64
    rng = np.random.default_rng(0)
    rows = []
    for length in ((16, 64) if args.quick else (16, 64, 256)):
        ids = rng.integers(1000, 30000, size=(batch, length)).astype(np.int32)
        ids[:, 0], ids[:, -1] = 101, 102
        mask = np.ones((batch, length), np.int32)
        compile_s, run_s, out = time_jax(model.encode_ids, ids, mask, repeats=3)
        np_s, ref = time_call(numpy_forward, np_params, ids, mask, repeats=2)
        err = float(np.abs(np.asarray(out) - ref).max())
        rows.append([length, batch, compile_s, run_s, batch / run_s, np_s, batch / np_s,
                     np_s / run_s, err])
    print_table("all-MiniLM-L6-v2 forward pass, one padded batch (random token ids)",
                ["tokens", "batch", "jax compile s", "jax run s", "jax texts/s",
                 "numpy s", "numpy texts/s", "numpy/jax", "max |diff|"], rows)

    texts = load_fine_food_reviews("train").texts[: (256 if args.quick else 1000)]
    start = time.perf_counter()
    embed_texts(texts, use_cache=False)
    first = time.perf_counter() - start
    start = time.perf_counter()
    embed_texts(texts, use_cache=False)
    second = time.perf_counter() - start
    tokens = sum(len(t) for t in te.tokenize(texts))
    print_table("embed_texts on Amazon Fine Foods reviews (cache off, batch_size=64)",
                ["texts", "tokens", "first call s (with compiles)", "second call s",
                 "texts/s (second)"],
                [[len(texts), tokens, first, second, len(texts) / second]])


if __name__ == "__main__":
    main()
