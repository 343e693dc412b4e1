"""A BERT encoder forward pass in pure JAX (the architecture of all-MiniLM-L6-v2).

Parameters are a pytree of arrays named after the Hugging Face `BertModel` checkpoint
(see `params_from_state_dict`); every function here is pure and `jit`/`vmap`
compatible. Only inference is needed (no dropout).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["params_from_state_dict", "embed_tokens", "encoder_layer", "bert_encode",
           "mean_pool_normalize", "sentence_embedding"]

_HIGHEST = jax.lax.Precision.HIGHEST


def _dense(p: Mapping, x: jax.Array) -> jax.Array:
    # p["w"] is stored as (in, out), i.e. the transpose of PyTorch's Linear.weight
    return jnp.matmul(x, p["w"], precision=_HIGHEST) + p["b"]


def _layer_norm(p: Mapping, x: jax.Array, eps: float) -> jax.Array:
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps) * p["scale"] + p["bias"]


def params_from_state_dict(state: Mapping[str, np.ndarray], num_layers: int,
                           dtype=np.float32) -> dict:
    """Convert a Hugging Face `BertModel` state dict (NumPy arrays) into the pytree used here."""

    def dense(prefix):
        return {"w": np.asarray(state[f"{prefix}.weight"], dtype).T.copy(),
                "b": np.asarray(state[f"{prefix}.bias"], dtype)}

    def norm(prefix):
        return {"scale": np.asarray(state[f"{prefix}.weight"], dtype),
                "bias": np.asarray(state[f"{prefix}.bias"], dtype)}

    emb = "embeddings"
    params = {
        "word": np.asarray(state[f"{emb}.word_embeddings.weight"], dtype),
        "position": np.asarray(state[f"{emb}.position_embeddings.weight"], dtype),
        "token_type": np.asarray(state[f"{emb}.token_type_embeddings.weight"], dtype),
        "embed_norm": norm(f"{emb}.LayerNorm"),
        "layers": [],
    }
    for i in range(num_layers):
        pre = f"encoder.layer.{i}"
        params["layers"].append({
            "query": dense(f"{pre}.attention.self.query"),
            "key": dense(f"{pre}.attention.self.key"),
            "value": dense(f"{pre}.attention.self.value"),
            "attn_out": dense(f"{pre}.attention.output.dense"),
            "attn_norm": norm(f"{pre}.attention.output.LayerNorm"),
            "ffn_in": dense(f"{pre}.intermediate.dense"),
            "ffn_out": dense(f"{pre}.output.dense"),
            "ffn_norm": norm(f"{pre}.output.LayerNorm"),
        })
    return jax.tree_util.tree_map(jnp.asarray, params)


def embed_tokens(params: Mapping, ids: jax.Array, eps: float = 1e-12) -> jax.Array:
    """Word + absolute position + token-type-0 embeddings, then LayerNorm: (B, L) -> (B, L, H)."""
    length = ids.shape[-1]
    x = params["word"][ids] + params["position"][:length] + params["token_type"][0]
    return _layer_norm(params["embed_norm"], x, eps)


def encoder_layer(p: Mapping, x: jax.Array, mask: jax.Array, num_heads: int,
                  eps: float = 1e-12) -> jax.Array:
    r"""One post-LayerNorm transformer encoder layer (BERT).

    $$
    h = \mathrm{LN}(x + \mathrm{MHA}(x)\,W_o + b_o), \qquad
    y = \mathrm{LN}(h + \mathrm{GELU}(h W_1 + b_1) W_2 + b_2),
    $$

    with scaled dot-product attention over `num_heads` heads in which key positions with
    `mask == 0` get zero weight, and the exact (erf) GELU.

    Args:
        p: the layer's parameters; x: (B, L, H) hidden states; mask: (B, L), 1 = real token.
    """
    batch, length, hidden = x.shape
    head = hidden // num_heads

    def heads(t):
        return t.reshape(batch, length, num_heads, head)

    q, k, v = (heads(_dense(p[name], x)) for name in ("query", "key", "value"))
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k, precision=_HIGHEST) / math.sqrt(head)
    scores = jnp.where(mask[:, None, None, :] > 0, scores, jnp.finfo(scores.dtype).min)
    weights = jax.nn.softmax(scores, axis=-1)
    context = jnp.einsum("bhqk,bkhd->bqhd", weights, v, precision=_HIGHEST)
    context = context.reshape(batch, length, hidden)
    h = _layer_norm(p["attn_norm"], x + _dense(p["attn_out"], context), eps)
    ffn = _dense(p["ffn_out"], jax.nn.gelu(_dense(p["ffn_in"], h), approximate=False))
    return _layer_norm(p["ffn_norm"], h + ffn, eps)


def bert_encode(params: Mapping, ids: jax.Array, mask: jax.Array, num_heads: int,
                eps: float = 1e-12) -> jax.Array:
    """Token embeddings of the last layer, (B, L) ids and mask -> (B, L, H)."""
    x = embed_tokens(params, ids, eps)
    for p in params["layers"]:
        x = encoder_layer(p, x, mask, num_heads, eps)
    return x


def mean_pool_normalize(tokens: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean over real tokens (mask == 1), then L2 normalisation: (B, L, H) -> (B, H).

    Matches sentence-transformers' `Pooling(mean)` + `Normalize` (a row with no
    real token gives the zero vector).
    """
    m = mask.astype(tokens.dtype)[..., None]
    pooled = jnp.sum(tokens * m, axis=-2) / jnp.maximum(jnp.sum(m, axis=-2), 1e-9)
    norm = jnp.linalg.norm(pooled, axis=-1, keepdims=True)
    return pooled / jnp.maximum(norm, 1e-12)


def sentence_embedding(params: Mapping, ids: jax.Array, mask: jax.Array, num_heads: int,
                       eps: float = 1e-12) -> jax.Array:
    """Mean-pooled, L2-normalised sentence embeddings, (B, L) -> (B, H)."""
    return mean_pool_normalize(bert_encode(params, ids, mask, num_heads, eps), mask)
