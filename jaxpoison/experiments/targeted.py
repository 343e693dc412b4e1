"""Recipes for model-targeted poisoning (Suya et al., ICML 2021), laid out like the paper's
Tables 1-2: for each target model, the number of poison points our attack used to get
eps-close (n_p), the certified Theorem-2 lower bound, and the test accuracy (or the
subpopulation's accuracy) of the model induced by our attack and by the KKT attack with
0.2 n_p, 0.4 n_p, ..., n_p points; plus a convergence figure."""

from __future__ import annotations

import time

import jax
import numpy as np

from jaxpoison.experiments import RecipeContext, Report, Table, demo, recipe

FRACTIONS = (0.2, 0.4, 0.6, 0.8, 1.0)
# the authors' label-flip grids (generate_target_theta.py): indiscriminate (MNIST 1-7) and
# subpopulation (Adult, their "orig" procedure, used for their Adult table)
DEFAULT_QUANTILES = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)
DEFAULT_REPEATS = (1, 2, 3, 5, 8, 10, 12, 15, 20, 25, 30, 50, 60)
SUBPOP_QUANTILES = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.8, 1.0)
SUBPOP_REPEATS = (1, 2, 3, 5, 8, 10, 12, 15, 20, 25, 30, 40, 50, 80, 100)


def _attack_rows(ctx, name, X, y, Xte, yte, target, *, loss, reg, eps, budget, key,
                 eval_sub=None, discrete=None):
    """Run our attack to eps-closeness, then ours/KKT at fractions of n_p.

    As in the authors' code, the column for a fraction f uses the first
    `floor(f * n_p)` points of our attack and a KKT attack with that many points
    (at least one point each)."""
    from jaxpoison.attacks import induced_lower_bound, kkt_attack, model_targeted_attack

    Xe, ye = (Xte, yte) if eval_sub is None else eval_sub
    t0 = time.perf_counter()
    points = []
    res = model_targeted_attack(
        X, y, target, loss=loss, reg=reg, lower=0.0, upper=1.0, eps=eps,
        budget=budget, key=key, throw=False, discrete=discrete,
        progress=lambda k, v, d: points.append(k) if ctx.show_progress and k % 50 == 0
        else None)
    secs = time.perf_counter() - t0
    n_p = res.num_poison
    ours, kkt = [], []
    for frac in FRACTIONS:
        k = max(1, int(frac * n_p + 1e-9))
        Xa = np.vstack([X, np.asarray(res.X_poison[:k])])
        ya = np.r_[y, np.asarray(res.y_poison[:k])]
        from jaxpoison.models import fit_linear

        m = fit_linear(Xa, ya, loss=loss, reg=reg, throw=False).model
        ours.append(float(m.accuracy(Xe, ye)))
        # quick: a coarse n_+/n_p grid; full: the solver's defaults (11 splits)
        kkt_opts = {"splits": 5, "steps": 500} if ctx.quick else {}
        kk = kkt_attack(X, y, target, loss=loss, reg=reg, lower=0.0, upper=1.0, budget=k,
                        throw=False, **kkt_opts)
        kkt.append(float(kk.model.accuracy(Xe, ye)))
    # the paper's protocol: Theorem 2 against the model our attack induced (a second run
    # with it as the target, same eps, at most 2 n_p points), rounded down as the authors
    ib = induced_lower_bound(X, y, res.model, loss=loss, reg=reg, lower=0.0, upper=1.0,
                             eps=eps, budget=2 * max(n_p, 1), discrete=discrete, key=key,
                             throw=False)
    row = [name, loss, "yes" if res.success else "no", n_p, n_p / len(y), res.best_lower_bound,
           res.best_relaxed_lower_bound, ib.rounded_down, ib.relaxed_rounded_down,
           float(target.accuracy(Xe, ye))]
    return row, ours, kkt, res, secs


def _figure(ctx, runs, fname, title):
    if not ctx.plotting:  # no matplotlib: the CLI drops the figure and notes it
        return fname
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for label, res in runs:
        k = np.arange(len(res.max_loss))
        axes[0].plot(k, np.asarray(res.max_loss), label=label)
        axes[1].plot(k, np.asarray(res.param_distance), label=label)
    axes[0].set(xlabel="poison points added", ylabel="max loss difference", yscale="log")
    axes[1].set(xlabel="poison points added", ylabel=r"$\|\theta_t-\theta_p\|_2$",
                yscale="log")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(ctx.figure_path(fname), dpi=120)
    plt.close(fig)
    return fname


def _table(title, rows, ours, kkt, eval_name):
    headers = ["target", "model", "eps reached", "n_p (ours)", "n_p / N",
               "lower bound (vs target, ceil)", "lower bound (vs target, relaxed box, ceil)",
               "lower bound (vs induced model, floor: paper)",
               "lower bound (vs induced, relaxed box, floor)", f"target model {eval_name}"]
    headers += [f"ours {f:g}n_p" for f in FRACTIONS] + [f"KKT {f:g}n_p" for f in FRACTIONS]
    return Table(title, headers, [r + o + k for r, o, k in zip(rows, ours, kkt, strict=True)],
                 caption=f"{eval_name} of the model induced with 0.2 n_p ... n_p points; "
                 "n_p / N: poison points per clean training row.")


def _indiscriminate(ctx: RecipeContext, name, X, y, Xte, yte, *, reg, eps, errors, losses,
                    quantiles, repeats, budget, pool="train"):
    """`pool="test"` flips (copies of) test points to make the candidate targets, as
    the authors' `generate_target_theta.py` does; `"train"` flips training points.
    Either way a candidate's error is measured on the test split."""
    from jaxpoison.attacks import indiscriminate_targets

    rows, ours, kkt, runs, notes = [], [], [], [], []
    key = jax.random.key(ctx.seed)
    X_pool, y_pool = (Xte, yte) if pool == "test" else (None, None)
    for loss in losses:
        tm = indiscriminate_targets(X, y, loss=loss, reg=reg, target_errors=errors,
                                    quantiles=quantiles, repeats=repeats, X_pool=X_pool,
                                    y_pool=y_pool, X_eval=Xte, y_eval=yte, throw=False)
        for i, err in enumerate(ctx.progress(errors, f"{name} {loss}")):
            target = tm.target(i)
            row, o, k, res, secs = _attack_rows(
                ctx, f"{int(100 * err)}% error", X, y, Xte, yte, target, loss=loss, reg=reg,
                eps=eps[loss], budget=budget, key=key)
            rows.append(row)
            ours.append(o)
            kkt.append(k)
            runs.append((f"{loss} {int(100 * err)}%", res))
            notes.append(f"{loss} {int(100 * err)}%: {res.num_poison} points in {secs:.1f} s "
                         f"({secs / max(res.num_poison, 1) * 1e3:.0f} ms/point)")
    return rows, ours, kkt, runs, notes


@recipe("targeted-breast-cancer", "model-targeted attack on breast cancer (quick case): "
        "SVM and LR, indiscriminate targets", part="targeted")
def breast_cancer(ctx: RecipeContext) -> Report:
    from jaxpoison.datasets import load_breast_cancer

    X, y = load_breast_cancer(standardize=False)
    X = (X - X.min(0)) / (X.max(0) - X.min(0))
    rng = np.random.default_rng(ctx.seed)
    p = rng.permutation(len(y))
    X, y = X[p], y[p]
    Xtr, ytr, Xte, yte = X[:400], y[:400], X[400:], y[400:]
    losses = ("hinge",) if ctx.quick else ("hinge", "logistic")
    rows, ours, kkt, runs, notes = _indiscriminate(
        ctx, "breast-cancer", Xtr, ytr, Xte, yte, reg=0.01,
        eps={"hinge": 0.05, "logistic": 0.05}, errors=(0.1, 0.15),
        losses=losses, quantiles=(0.1, 0.2, 0.3, 0.4), repeats=(1, 2, 4, 8),
        budget=200 if ctx.quick else 400)
    rep = Report("targeted-breast-cancer", "Model-targeted poisoning: breast cancer")
    rep.tables.append(_table("Breast cancer (400 train / 169 test, features in [0, 1], "
                             "lambda = 0.01)", rows, ours, kkt, "test accuracy"))
    rep.figures.append(_figure(ctx, runs, "targeted-breast-cancer.png",
                               "breast cancer: convergence to the target"))
    rep.notes += notes
    return rep


@recipe("targeted-mnist17", "model-targeted attack on MNIST 1-vs-7 (Table 2 layout): SVM "
        "and LR, lambda=0.09, eps=0.1, target errors 5/10/15%", part="targeted")
def mnist17(ctx: RecipeContext) -> Report:
    from jaxpoison.datasets import load_mnist17

    s = load_mnist17(seed=ctx.seed)
    X, y, Xte, yte = s.X_train, s.y_train, s.X_test, s.y_test
    if ctx.quick:
        X, y = X[:300], y[:300]
    losses = ("hinge",) if ctx.quick else ("hinge", "logistic")
    errors = (0.05, 0.1) if ctx.quick else (0.05, 0.1, 0.15)
    # target heuristic as in the authors' generate_target_theta.py: flip test points below
    # a clean-margin quantile, repeat them, keep the lowest-loss candidate whose test
    # error reaches the goal; full mode uses their 12 x 13 grid (the function's default)
    grid = ({"quantiles": (0.1, 0.3, 0.5), "repeats": (1, 5, 20)} if ctx.quick else
            {"quantiles": DEFAULT_QUANTILES, "repeats": DEFAULT_REPEATS})
    rows, ours, kkt, runs, notes = _indiscriminate(
        ctx, "mnist17", X, y, Xte, yte, reg=0.09, eps={"hinge": 0.1, "logistic": 0.1},
        errors=errors, losses=losses, pool="test", budget=300 if ctx.quick else 1000,
        **grid)
    rep = Report("targeted-mnist17", "Model-targeted poisoning: MNIST 1-vs-7")
    rep.tables.append(_table(f"MNIST 1-vs-7 ({len(y)} train / {len(yte)} test, box [0, 1], "
                             "lambda = 0.09, eps = 0.1)", rows, ours, kkt, "test accuracy"))
    rep.figures.append(_figure(ctx, runs, "targeted-mnist17.png",
                               "MNIST 1-vs-7: convergence to the target"))
    rep.notes += notes
    return rep


# Suya et al. (ICML 2021) Table 2, MNIST 1-7 rows (13,007 train / 2,163 test), as re-typed in
# shared/papers/README.md: per (loss, target error) n_p, the lower bound (SVM only; the paper
# prints the 10% one as 3,850.4 +- 0.8), the target model's test accuracy (%) and the test
# accuracy (%) induced with 0.2 n_p ... n_p points as (KKT, ours)
PAPER_MNIST17_N = 13007
PAPER_MNIST17 = {
    ("hinge", 0.05): (1737, 874.0, 94.0, ((97.3, 97.1), (96.4, 96.1), (95.7, 95.7),
                                          (94.9, 94.9), (94.3, 94.6))),
    ("hinge", 0.1): (5458, 3850.4, 88.8, ((95.8, 95.5), (93.4, 92.1), (92.7, 90.9),
                                          (91.1, 90.7), (90.2, 90.2))),
    ("hinge", 0.15): (6192, 4904.0, 83.3, ((98.3, 97.8), (96.3, 98.1), (97.2, 97.3),
                                           (98.3, 92.7), (82.7, 85.9))),
    ("logistic", 0.05): (756, None, 94.7, ((97.5, 96.9), (97.4, 96.5), (97.2, 96.0),
                                           (96.9, 95.7), (96.9, 95.2))),
    ("logistic", 0.1): (2113, None, 89.0, ((97.0, 95.7), (96.9, 93.8), (96.8, 92.3),
                                           (96.2, 91.4), (96.4, 90.4))),
    ("logistic", 0.15): (3907, None, 84.5, ((96.9, 95.4), (97.0, 93.3), (97.1, 90.7),
                                            (97.1, 88.3), (97.1, 87.1))),
}
# Fashion-MNIST classes standing in for MNIST's 1 and 7: dress (+1) vs bag (-1), the pair
# whose clean linear SVM / LR test accuracy at lambda = 0.09 (98.65 / 97.95%, liblinear) is
# closest to the paper's MNIST 1-7 (98.9 / 99.1%) among the pairs we checked
FASHION_PAIR = (3, 8)
# the label-flip grid for the 12,000-row task: a 5 x 5 subset of the authors' 12 x 13 grid
# (one candidate fit of 14,000 rows x 784 took 30-60 s here, so their grid would take 1-3
# hours per loss). Chosen from a liblinear scan of their whole grid on this task (SVM test
# errors in docs/targeted.md): it brackets 5 / 10 / 15% within about 0.5 / 1.5 / 2.5 points
FASHION_QUANTILES = (0.1, 0.2, 0.25, 0.3, 0.4)
FASHION_REPEATS = (12, 15, 20, 25, 30)


def _mean_std(values, fmt="{:.1f}"):
    v = np.asarray(values, float)
    if v.size == 1:
        return fmt.format(v[0])
    return f"{fmt.format(v.mean())} ± {fmt.format(v.std(ddof=1))}"


def _paper_table(loss_errors, runs, N, data_name):
    """Table 2's layout: per (loss, target error) the paper's MNIST 1-7 row and ours
    (mean ± std over seeds; accuracies in %, cells "KKT / ours")."""
    headers = ["rows", "model", "target error", "N", "n_p", "n_p / N",
               "lower bound (paper's protocol)", "lower bound / N",
               "target model accuracy (%)"]
    headers += [f"{f:g} n_p: KKT / ours (%)" for f in FRACTIONS] + ["eps reached (seeds)"]
    out = []
    for loss, err in loss_errors:
        model = "SVM" if loss == "hinge" else "LR"
        if (loss, err) in PAPER_MNIST17:  # the paper has 5 / 10 / 15% only
            n_p, lb, acc, cells = PAPER_MNIST17[(loss, err)]
            N0 = PAPER_MNIST17_N
            out.append(["paper: MNIST 1-7", model, f"{err:.0%}", N0, n_p, f"{n_p / N0:.1%}",
                        "n/a (LR)" if lb is None else f"{lb:g}",
                        "" if lb is None else f"{lb / N0:.1%}", f"{acc:.1f}"]
                       + [f"{k:.1f} / {o:.1f}" for k, o in cells] + [""])
        rs = runs.get((loss, err), [])
        if not rs:
            continue
        nps = [r["n_p"] for r in rs]
        lbs = [r["induced_bound"] for r in rs]
        lb_cell = _mean_std(lbs, "{:.0f}") + ("" if loss == "hinge" else " (not certified)")
        out.append([f"ours: {data_name} ({len(rs)} seed{'s' * (len(rs) > 1)})", model,
                    f"{err:.0%}", N, _mean_std(nps, "{:.0f}"),
                    _mean_std(100 * np.asarray(nps) / N, "{:.1f}") + "%", lb_cell,
                    _mean_std(100 * np.asarray(lbs) / N, "{:.1f}") + "%",
                    _mean_std([100 * r["target_acc"] for r in rs])]
                   + [f"{_mean_std([100 * r['kkt'][i] for r in rs])} / "
                      f"{_mean_std([100 * r['ours'][i] for r in rs])}"
                      for i in range(len(FRACTIONS))]
                   + [f"{sum(r['success'] for r in rs)} / {len(rs)}"])
    return Table(f"Table 2 layout: paper (MNIST 1-7) beside ours ({data_name})", headers, out,
                 caption="Paper: Suya et al. (ICML 2021) Table 2, MNIST 1-7 rows (4 runs "
                 "averaged). Ours: mean ± sample std over seeds. Lower bound: Theorem 2 "
                 "against the model our attack induced, rounded down (the paper's "
                 "protocol; for LR the inner max is a local search, so it is not "
                 "certified). N: clean training rows.")


def fashion_two_class(seed=0, n_train=None, n_test=None, pair=FASHION_PAIR):
    """The two-class Fashion-MNIST task of `targeted-fashion`: classes `pair` (first -> +1,
    second -> -1), all 784 pixels scaled to [0, 1]; all 12,000 training / 2,000 test
    images of the pair, or seeded random subsets of `n_train` / `n_test` of them."""
    from jaxpoison.datasets import load_fashion_mnist

    s = load_fashion_mnist()
    a, b = pair
    rng = np.random.default_rng(seed)

    def pick(X, y, n):
        idx = np.flatnonzero((y == a) | (y == b))
        if n is not None:
            idx = np.sort(rng.choice(idx, n, replace=False))
        return (X[idx].reshape(len(idx), -1).astype(np.float64) / 255.0,
                np.where(y[idx] == a, 1, -1).astype(np.int8))

    X, y = pick(s.X_train, s.y_train, n_train)
    Xte, yte = pick(s.X_test, s.y_test, n_test)
    return X, y, Xte, yte


def run_fashion(ctx: RecipeContext, *, losses, errors, seeds, budget, quantiles, repeats,
                n_train=None, n_test=None, checkpoint=None) -> Report:
    """`targeted-fashion`'s body with its sizes as arguments (the recipe calls it with
    the full settings; a partial run can call it with fewer losses, errors or seeds).

    Targets (per loss) come from the label-flip heuristic on the test pool, as in
    `targeted-mnist17`; they do not depend on the seed. Per seed, `_attack_rows` runs
    our attack to eps-closeness (key = the seed), KKT and ours at 0.2..1 n_p, and the
    paper's-protocol bound. `checkpoint`, if given, is called with the report so far
    (tables, no figure) after each run, so that a long run leaves its finished rows."""
    from jaxpoison.attacks import indiscriminate_targets

    X, y, Xte, yte = fashion_two_class(ctx.seed, n_train, n_test)
    N = len(y)
    names = ("dress", "bag") if FASHION_PAIR == (3, 8) else FASHION_PAIR
    data_name = f"Fashion-MNIST {names[0]}-vs-{names[1]}"
    reg, eps = 0.09, 0.1
    rows, ours, kkt, figs, notes = [], [], [], [], []
    runs: dict = {}

    def report(partial):
        rep = Report("targeted-fashion", f"Model-targeted poisoning: {data_name} "
                     "(substitutes for MNIST 1-7)" + (" [partial]" if partial else ""))
        rep.tables.append(_paper_table([(lo, e) for lo in losses for e in errors], runs, N,
                                       data_name))
        rep.tables.append(_table(f"{data_name} per seed ({N} train / {len(yte)} test, box "
                                 "[0, 1], lambda = 0.09, eps = 0.1)", rows, ours, kkt,
                                 "test accuracy"))
        rep.notes += notes + [
            "Fashion-MNIST stands in for MNIST 1-7 (full MNIST cannot be installed here): "
            f"two classes ({names[0]} +1, {names[1]} -1); the paper's scale is all 12,000 "
            f"train / 2,000 test images of the pair (MNIST 1-7: 13,007 / 2,163); this run: "
            f"{N} / {len(yte)}."]
        return rep

    for loss in losses:
        t0 = time.perf_counter()
        tm = indiscriminate_targets(X, y, loss=loss, reg=reg, target_errors=errors,
                                    quantiles=quantiles, repeats=repeats, X_pool=Xte,
                                    y_pool=yte, X_eval=Xte, y_eval=yte, throw=False)
        # the candidate used per goal: the chosen one, else (goal not reached) the most
        # damaging, as `indiscriminate_targets` does
        cand_err = np.asarray(tm.error)
        chosen = np.where(np.asarray(tm.chosen) >= 0, np.asarray(tm.chosen),
                          int(np.argmax(cand_err)))
        picked = [(float(q), int(r), round(float(e), 4)) for (q, r), e in
                  zip(np.asarray(tm.params)[chosen], cand_err[chosen], strict=True)]
        notes.append(f"{loss} targets: {len(quantiles) * len(repeats)} candidates in "
                     f"{time.perf_counter() - t0:.1f} s; chosen (quantile, repeats, test "
                     f"error) {picked} for goals {list(errors)}"
                     + ("" if (np.asarray(tm.chosen) >= 0).all() else " (a goal not "
                        "reached: the most damaging candidate is used)"))
        if checkpoint is not None:
            checkpoint(report(True))
        for i, err in enumerate(errors):
            target = tm.target(i)
            for seed in ctx.progress(seeds, f"fashion {loss} {int(100 * err)}%"):
                t1 = time.perf_counter()
                row, o, k, res, secs = _attack_rows(
                    ctx, f"{int(100 * err)}% error, seed {seed}", X, y, Xte, yte, target,
                    loss=loss, reg=reg, eps=eps, budget=budget, key=jax.random.key(seed))
                rows.append(row)
                ours.append(o)
                kkt.append(k)
                runs.setdefault((loss, err), []).append(
                    {"n_p": row[3], "induced_bound": row[7], "target_acc": row[9],
                     "success": row[2] == "yes", "ours": o, "kkt": k})
                if seed == seeds[0]:
                    figs.append((f"{loss} {int(100 * err)}%", res))
                notes.append(f"{loss} {int(100 * err)}% seed {seed}: {res.num_poison} "
                             f"points in {secs:.1f} s (attack only; "
                             f"{time.perf_counter() - t1:.1f} s with KKT and the bound)")
                if checkpoint is not None:
                    checkpoint(report(True))
    rep = report(False)
    rep.figures.append(_figure(ctx, figs, "targeted-fashion.png",
                               f"{data_name}: convergence to the target"))
    return rep


@recipe("targeted-fashion", "model-targeted attack at the paper's MNIST-1-7 scale on "
        "Fashion-MNIST dress-vs-bag (12,000 / 2,000; substitutes for MNIST 1-7, which cannot "
        "be installed here), Table 2 layout with n_p / N beside the paper's: SVM and LR, "
        "5/10/15% target errors, 4 seeds", part="targeted")
def fashion(ctx: RecipeContext) -> Report:
    if ctx.quick:  # a 1,000 / 400 subset, SVM, one target, coarse grid
        return run_fashion(ctx, losses=("hinge",), errors=(0.1,), seeds=(ctx.seed,),
                           budget=200, quantiles=(0.2, 0.4), repeats=(2, 5),
                           n_train=1000, n_test=400)
    return run_fashion(ctx, losses=("hinge", "logistic"), errors=(0.05, 0.1, 0.15),
                       seeds=tuple(ctx.seed + i for i in range(4)), budget=8000,
                       quantiles=FASHION_QUANTILES, repeats=FASHION_REPEATS)


@recipe("targeted-adult", "model-targeted subpopulation attack on Adult (Table 1 layout): "
        "SVM eps=0.01 / LR eps=0.05, lambda=0.09, 3 subpopulations, 100% target error",
        part="targeted")
def adult(ctx: RecipeContext) -> Report:
    """Set-up as in the authors' code: KMeans (20 clusters, seed 0, 10 restarts) on the
    training features; a subpopulation is a cluster's label -1 points; per model the three
    clusters whose training subpopulation the clean model classifies best; the target is
    their "orig" label-flip heuristic (flip the cluster's label -1 test points below a
    clean-margin quantile, repeat them, keep the lowest-loss candidate that misclassifies
    all of the test subpopulation); accuracies are on the test subpopulation."""
    from sklearn.cluster import KMeans

    from jaxpoison.attacks import DiscreteFeatures, indiscriminate_targets
    from jaxpoison.datasets import load_adult
    from jaxpoison.models import fit_linear

    # the authors' rows (their fixed subsample, 62% >50K: `load_adult`'s "authors" variant,
    # whose clean accuracies are the paper's 78.5 / 79.9); the seed drives the attack only
    s = load_adult(variant="authors", seed=0)
    X, y, Xte, yte = s.X_train, s.y_train, s.X_test, s.y_test
    # the authors' feasible set: the 53 categorical (one-hot) features binary, no one-hot
    # sum constraint (their Adult MIP), the 4 continuous ones in [0, 1]
    discrete = DiscreteFeatures.binary(
        [j for j, name in enumerate(s.feature_names) if "=" in name],
        num_features=X.shape[1])
    if ctx.quick:
        X, y = X[:2000], y[:2000]
    reg = 0.09
    km = KMeans(n_clusters=20, random_state=0, n_init=10).fit(X)
    tr_c, te_c = km.labels_, km.predict(Xte)
    # the authors' 8 x 15 grid (SUBPOP_QUANTILES x SUBPOP_REPEATS) costs ~120 hinge fits of
    # the whole training set per subpopulation; we use a 5 x 5 subset of it (3 x 4 quick)
    grid = ({"quantiles": (0.5, 0.8, 1.0), "repeats": (1, 5, 20, 100)} if ctx.quick else
            {"quantiles": (0.3, 0.4, 0.5, 0.8, 1.0), "repeats": (1, 3, 10, 30, 100)})

    losses = ("hinge",) if ctx.quick else ("hinge", "logistic")
    eps = {"hinge": 0.01, "logistic": 0.05}
    rows, ours, kkt, runs, notes = [], [], [], [], []
    key = jax.random.key(ctx.seed)
    for loss in losses:
        clean = fit_linear(X, y, loss=loss, reg=reg).model
        # the three clusters (label -1 part) the clean model classifies best, as the authors
        accs = []
        for c in range(20):
            sub = (tr_c == c) & (y == -1)
            has_test = ((te_c == c) & (yte == -1)).any()
            accs.append(float(clean.accuracy(X[sub], y[sub]))
                        if sub.sum() >= 10 and has_test else -1)
        chosen = np.argsort(accs)[-(2 if ctx.quick else 3):]
        for c in ctx.progress(list(chosen), f"adult {loss}"):
            sub = (tr_c == c) & (y == -1)
            sub_te = (te_c == c) & (yte == -1)
            Xs, ys = Xte[sub_te], yte[sub_te]
            tm = indiscriminate_targets(X, y, loss=loss, reg=reg, target_errors=[1.0],
                                        X_pool=Xs, y_pool=ys, X_eval=Xs, y_eval=ys,
                                        throw=False, **grid)
            target = tm.target(0)
            row, o, k, res, secs = _attack_rows(
                ctx, f"cluster {c} ({sub.sum()} train / {sub_te.sum()} test pts)", X, y,
                Xte, yte, target, loss=loss, reg=reg, eps=eps[loss],
                budget=1000 if ctx.quick else 3000, eval_sub=(Xs, ys), key=key,
                discrete=discrete)
            rows.append(row)
            ours.append(o)
            kkt.append(k)
            runs.append((f"{loss} cluster {c}", res))
            reached = "reached" if int(tm.chosen[0]) >= 0 else "NOT reached (most damaging)"
            notes.append(f"{loss} cluster {c}: target {reached}; {res.num_poison} points in "
                         f"{secs:.1f} s")
    rep = Report("targeted-adult", "Model-targeted poisoning: Adult subpopulations")
    rep.tables.append(_table(f"Adult ({len(y)} train / {len(yte)} test, the authors' rows; "
                             "attack points: 53 binary + 4 "
                             "continuous features in [0, 1], lambda = 0.09)", rows, ours, kkt,
                             "subpopulation test accuracy"))
    rep.figures.append(_figure(ctx, runs, "targeted-adult.png",
                               "Adult: convergence to the target"))
    rep.notes += notes + ["Attack points keep the 53 categorical features binary (exact "
                          "inner maximisation over {0,1}^53 x [0,1]^4, the authors' MIP "
                          "feasible set); 'lower bound' is Theorem 2 over that set, "
                          "'lower bound (relaxed box)' over [0,1]^57 (the authors' "
                          "conservative bound). KMeans uses sklearn (20 clusters, seed 0, "
                          "10 restarts)."]
    return rep


@demo("Model-targeted", order=30)
def demo_section(ctx: RecipeContext) -> Report:
    """Breast cancer, linear SVM: a label-flip target, our attack (eps = 0.2, 40 points)."""
    from jaxpoison.attacks import indiscriminate_targets, model_targeted_attack
    from jaxpoison.datasets import load_breast_cancer

    X, y = load_breast_cancer(standardize=False)
    X = (X - X.min(0)) / (X.max(0) - X.min(0))
    p = np.random.default_rng(0).permutation(len(y))
    X, y = X[p], y[p]
    Xtr, ytr, Xte, yte = X[:400], y[:400], X[400:], y[400:]
    tm = indiscriminate_targets(Xtr, ytr, reg=0.01, target_errors=[0.1],
                                quantiles=(0.3,), repeats=(4,), X_eval=Xte, y_eval=yte,
                                throw=False)
    target = tm.target(0)
    t0 = time.perf_counter()
    res = model_targeted_attack(Xtr, ytr, target, reg=0.01, lower=0.0, upper=1.0, eps=0.2,
                                budget=40, key=jax.random.key(ctx.seed), throw=False)
    secs = time.perf_counter() - t0
    rows = [[k, float(res.max_loss[k]), float(res.param_distance[k]),
             float(res.lower_bound[k])]
            for k in sorted({0, len(res.max_loss) // 4, len(res.max_loss) // 2,
                             len(res.max_loss) - 1})]
    reached = "reached" if bool(res.success) else "budget used, did not reach"
    rep = Report("targeted-demo", "Model-targeted poisoning (breast cancer, linear SVM)")
    rep.tables.append(Table(
        f"Our attack: {res.num_poison} points ({reached} eps = 0.2), certified lower bound "
        f"{res.best_lower_bound}",
        ["points", "max loss diff", "||theta_t - theta_p||", "Theorem-2 bound"], rows,
        caption=f"target test accuracy {float(target.accuracy(Xte, yte)):.3f}, induced "
        f"{float(res.model.accuracy(Xte, yte)):.3f}; {secs:.1f} s"))
    rep.figures.append(_figure(ctx, [("SVM 10%", res)], "targeted-demo.png",
                               "breast cancer: convergence"))
    return rep
