"""Recipe `floral-moon` and the FLORAL demo section.

Bal, Cevher & Muehlebach (ICLR 2025), Moon experiment: RBF kernel SVM with C = 10,
gamma = 1 on the authors' exact split (500 train / 500 validation / 1000 test); Best
(max over rounds) and Last test accuracy of FLORAL and of the baselines on clean labels,
on the authors' adversarial label sets and on alfa-tilt labels generated here.
"""

from __future__ import annotations

import time

import jax
import numpy as np

from jaxpoison.attacks import alfa_tilt, flip_budget
from jaxpoison.defenses import (
    curie,
    floral,
    ln_svm,
    ls_svm,
    mlp_baseline,
    mlp_pgd_baseline,
    svm_baseline,
)
from jaxpoison.experiments import RecipeContext, Report, Table, demo, recipe

C, GAMMA = 10.0, 1.0
K_ATTACK = 25          # FLORAL's per-round flip budget (authors' config: flip_budget 25)
LR = 0.01              # learning rate of the projected-gradient step (see docs/floral.md)
LEVELS = (5, 10, 25)   # percent of training labels flipped

# Paper (Table 1 of Bal et al. 2025), Best accuracy on alfa-tilt labels.
PAPER_ALFA_TILT = {"FLORAL": {0: 0.968, 5: 0.972, 10: 0.971, 25: 0.893},
                   "SVM": {0: 0.968, 5: 0.944, 10: 0.910, 25: 0.787}}


# NN baselines as in the authors' code for Moon: a 2-32-32-1 ReLU network; NN-PGD trains
# on l_inf PGD points with eps = 8/255, 5 steps of 2/255 from delta = 0
NN = dict(width=32, depth=2, epochs=1000, lr=1e-2, reg=1e-4)
PGD = dict(eps=8 / 255, steps=5, step_size=2 / 255, random_start=False)


def _baselines(X, y, key):
    return {
        "SVM": svm_baseline(X, y, C=C, gamma=GAMMA),
        "LN-SVM": ln_svm(X, y, C=C, gamma=GAMMA, mu=0.25),
        "Curie": curie(X, y, C=C, gamma=GAMMA, eps=0.3, min_samples=5, omega=1.0),
        "LS-SVM": ls_svm(X, y, C=C, gamma=GAMMA, k=10, eta=0.5),
        "NN": mlp_baseline(X, y, key=key, **NN),
        "NN-PGD": mlp_pgd_baseline(X, y, key=key, **NN, **PGD),
    }


def _floral_runs(X, y, Xt, yt, keys, rounds, lr=LR):
    run = jax.vmap(lambda key: floral(X, y, C=C, gamma=GAMMA, budget=K_ATTACK, steps=rounds,
                                      lr=lr, key=key, X_eval=Xt, y_eval=yt, record_lam=True,
                                      throw=False))
    return run(keys)


def val_selected_accuracy(res, X, y, Xv, yv, Xt, yt, gamma=GAMMA):
    """Test accuracy of FLORAL at the round with the best validation accuracy.

    Rebuilds every round's classifier from `res.history` (needs `record_lam=True`):
    labels of round t = clean labels with the attacker's flips of round t-1.
    """
    from sklearn.metrics.pairwise import rbf_kernel

    lams = np.asarray(res.history.lam)
    flips = np.asarray(res.history.flips)
    b = np.asarray(res.history.intercept)
    T, n = lams.shape
    Y = np.tile(np.asarray(y, float), (T, 1))
    for t in range(1, T):
        f = flips[t - 1]
        Y[t, f[f >= 0]] *= -1
    coef = np.where(lams > 1e-5, lams * Y, 0.0)
    dv = rbf_kernel(Xv, X, gamma=gamma) @ coef.T + b
    dt = rbf_kernel(Xt, X, gamma=gamma) @ coef.T + b
    acc_v = np.mean(np.where(dv > 0, 1, -1) == np.asarray(yv)[:, None], axis=0)
    acc_t = np.mean(np.where(dt > 0, 1, -1) == np.asarray(yt)[:, None], axis=0)
    return float(acc_t[int(np.argmax(acc_v))])


def fmt_mean_std(vals) -> str:
    """`"mean ± std"` of a list of numbers, three decimals (the FLORAL tables' format)."""
    vals = np.asarray(vals, float)
    return f"{vals.mean():.3f} ± {vals.std():.3f}"


def _boundary_figure(path, X, y_poison, models, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xx, yy = np.meshgrid(np.linspace(X[:, 0].min() - 0.5, X[:, 0].max() + 0.5, 150),
                         np.linspace(X[:, 1].min() - 0.5, X[:, 1].max() + 0.5, 150))
    grid = np.c_[xx.ravel(), yy.ravel()]
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 4.2))
    for ax, (name, model) in zip(np.atleast_1d(axes), models.items(), strict=True):
        Z = np.asarray(model.decision_function(grid)).reshape(xx.shape)
        ax.contourf(xx, yy, Z, levels=20, cmap="coolwarm", alpha=0.35)
        ax.contour(xx, yy, Z, levels=[0.0], colors="k", linewidths=2)
        ax.scatter(X[:, 0], X[:, 1], c=y_poison, cmap="coolwarm", s=10, edgecolors="k",
                   linewidths=0.3)
        ax.set_title(name)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@recipe("floral-moon", "FLORAL vs SVM / LN-SVM / Curie / LS-SVM / NN / NN-PGD on the authors' Moon "
        "(clean, authors' adversarial labels, alfa-tilt labels)", part="FLORAL")
def floral_moon(ctx: RecipeContext) -> Report:
    from jaxpoison.datasets import load_floral_moon

    data = load_floral_moon()
    X, y = data.X_train.astype(float), data.y_train.astype(int)
    Xt, yt = data.X_test.astype(float), data.y_test.astype(int)
    reps = 2 if ctx.quick else 5
    rounds = 100 if ctx.quick else 500
    levels = (10,) if ctx.quick else LEVELS
    base_key = jax.random.key(ctx.seed)
    floral_keys = jax.random.split(jax.random.fold_in(base_key, 1), reps)
    tilt_keys = jax.random.split(jax.random.fold_in(base_key, 2), reps)

    # label sets: name -> list of label vectors (one per replication)
    sets: dict[str, tuple[int, str, list[np.ndarray]]] = {"clean": (0, "clean", [y] * reps)}
    for lvl in levels:
        key = f"adv_{lvl}"
        if key in data.adversarial:
            adv = data.adversarial[key].astype(int)
            sets[f"authors {lvl}%"] = (lvl, "authors", [adv] * reps)
    for lvl in ctx.progress(levels, "alfa-tilt labels"):
        L = flip_budget(len(y), lvl / 100)
        labs = [np.asarray(alfa_tilt(X, y, budget=L, variant="xiao", key=k, C=1.0, gamma=GAMMA,
                                     num_trials=10).labels) for k in tilt_keys]
        sets[f"alfa-tilt {lvl}%"] = (lvl, "alfa-tilt", labs)

    Xv, yv = data.X_val.astype(float), data.y_val.astype(int)
    methods = ["FLORAL", "SVM", "LN-SVM", "Curie", "LS-SVM", "NN", "NN-PGD"]
    nn_keys = jax.random.split(jax.random.fold_in(base_key, 3), reps)
    val_sel = {}
    best = {m: {} for m in methods}
    last = {m: {} for m in methods}
    timing = {}
    keep = {}
    for name in ctx.progress(list(sets), "label sets"):
        _, _, labs = sets[name]
        fb, fl, fv = [], [], []
        for m in methods[1:]:
            best[m][name], last[m][name] = [], []
        t0 = time.perf_counter()
        for r in range(reps):
            yr = labs[r]
            res = _floral_runs(X, yr, Xt, yt, floral_keys[r:r + 1], rounds)
            fb.append(float(res.best_accuracy[0]))
            fl.append(float(res.last_accuracy[0]))
            fv.append(val_selected_accuracy(jax.tree_util.tree_map(lambda a: a[0], res),
                                            X, yr, Xv, yv, Xt, yt))
            outs = _baselines(X, yr, nn_keys[r])
            for m, out in outs.items():
                acc = float(out.model.accuracy(Xt, yt))
                best[m][name].append(acc)
                last[m][name].append(acc)
            if r == 0:
                keep[name] = (yr, jax.tree_util.tree_map(lambda a: a[0], res.model),
                              outs["SVM"].model)
        best["FLORAL"][name], last["FLORAL"][name] = fb, fl
        val_sel[name] = fv
        timing[name] = time.perf_counter() - t0

    def paper(m, name):
        lvl, kind, _ = sets[name]
        if kind in ("clean", "alfa-tilt") and m in PAPER_ALFA_TILT:
            return PAPER_ALFA_TILT[m].get(lvl, "")
        return ""

    rows_best, rows_last = [], []
    for name in sets:
        rows_best.append([name] + [fmt_mean_std(best[m][name]) for m in methods]
                         + [paper("FLORAL", name), paper("SVM", name)])
        rows_last.append([name] + [fmt_mean_std(last[m][name]) for m in methods]
                         + [fmt_mean_std(val_sel[name])])
    report = Report(name="floral-moon", title="FLORAL on the Moon data (Bal et al. 2025)")
    report.tables.append(Table(
        title="Best test accuracy (FLORAL: max over rounds; baselines: single fit)",
        headers=["labels"] + methods + ["paper FLORAL", "paper SVM"], rows=rows_best,
        caption=f"mean ± std over {reps} replications (FLORAL attacker keys; alfa-tilt "
                f"label draws); C={C}, gamma={GAMMA}, k={K_ATTACK}, lr={LR}, rounds={rounds}. "
                "Paper columns: Best accuracy on alfa-tilt labels (clean row = no attack)."))
    report.tables.append(Table(
        title="Last-round test accuracy", headers=["labels"] + methods
        + ["FLORAL val-selected"], rows=rows_last,
        caption="FLORAL after the last round; baselines as above. 'FLORAL val-selected': "
                "test accuracy at the round with the best validation accuracy (no test "
                "data used for the choice)."))
    if not ctx.quick:
        report.tables.append(_lr_table(ctx, X, sets, Xt, yt, Xv, yv, floral_keys, rounds))
    fig_name = "floral_moon_boundary.png"
    show = next((n for n in sets if n.startswith("alfa-tilt")), "clean")
    yr, fmodel, smodel = keep[show]
    if ctx.plotting:
        _boundary_figure(ctx.figure_path(fig_name), X, yr, {"SVM": smodel, "FLORAL": fmodel},
                         f"Moon, {show} training labels")
        report.figures.append(fig_name)
    report.notes.append("FLORAL wall time per label set (all replications, incl. "
                        "compilation on the first): "
                        + ", ".join(f"{k}: {v:.1f}s" for k, v in timing.items()))
    report.data.update({"best": best, "last": last, "rounds": rounds, "replications": reps})
    return report


def _lr_table(ctx, X, sets, Xt, yt, Xv, yv, keys, rounds):
    rows = []
    names = [n for n in ("clean", "alfa-tilt 10%") if n in sets]
    for lr in ctx.progress((1e-4, 1e-3, 1e-2), "learning-rate sweep"):
        row = [lr]
        for name in names:
            labs = sets[name][2]
            b, last, vs = [], [], []
            for r in range(len(keys)):
                res = _floral_runs(X, labs[r], Xt, yt, keys[r:r + 1], rounds, lr=lr)
                b.append(float(res.best_accuracy[0]))
                last.append(float(res.last_accuracy[0]))
                vs.append(val_selected_accuracy(jax.tree_util.tree_map(lambda a: a[0], res),
                                                X, labs[r], Xv, yv, Xt, yt))
            row += [fmt_mean_std(b), fmt_mean_std(last), fmt_mean_std(vs)]
        rows.append(row)
    headers = ["lr"] + [f"{n}: {w}" for n in names for w in ("best", "last", "val-sel.")]
    return Table(title="FLORAL learning-rate sensitivity (test accuracy)", headers=headers,
                 rows=rows, caption=f"{len(keys)} replications, {rounds} rounds, k={K_ATTACK}")


@demo("FLORAL", order=20)
def floral_demo(ctx: RecipeContext) -> Report:
    """FLORAL vs a plain SVM on Moon with the authors' 10% adversarial labels (seconds)."""
    from jaxpoison.datasets import load_floral_moon

    data = load_floral_moon()
    X, y = data.X_train.astype(float), data.y_train.astype(int)
    Xt, yt = data.X_test.astype(float), data.y_test.astype(int)
    t0 = time.perf_counter()
    if "adv_10" in data.adversarial:
        poisoned, what = data.adversarial["adv_10"].astype(int), "authors' 10% adversarial"
    else:  # regenerated data: make our own poisoned labels
        poisoned = np.asarray(alfa_tilt(X, y, budget=50, C=1.0, gamma=GAMMA).labels)
        what = "10% alfa-tilt"
    svm = svm_baseline(X, poisoned, C=C, gamma=GAMMA).model
    res = floral(X, poisoned, C=C, gamma=GAMMA, budget=K_ATTACK, steps=200, lr=LR,
                 key=jax.random.key(ctx.seed), X_eval=Xt, y_eval=yt)
    elapsed = time.perf_counter() - t0
    report = Report(name="floral-demo", title="FLORAL: adversarial training vs label poisoning")
    report.tables.append(Table(
        title=f"Moon, {what} labels: test accuracy",
        headers=["model", "best", "last"],
        rows=[["SVM", float(svm.accuracy(Xt, yt)), float(svm.accuracy(Xt, yt))],
              ["FLORAL (200 rounds)", float(res.best_accuracy), float(res.last_accuracy)]],
        caption=f"C={C}, gamma={GAMMA}, k={K_ATTACK}, lr={LR}; {elapsed:.1f}s incl. "
                "compilation"))
    fig = "floral_demo_boundary.png"
    if ctx.plotting:
        _boundary_figure(ctx.figure_path(fig), X, poisoned, {"SVM": svm, "FLORAL": res.model},
                         f"Moon, {what} labels")
        report.figures.append(fig)
    return report
