r"""Recipe `metagrad-poison`: bilevel data poisoning through implicit gradients (Biggio et
al. 2012; Mei & Zhu 2015) against the follow-the-leader model-targeted attack (Suya et
al. 2021) at an equal budget of poison points.

* Linear SVM (hinge) and logistic regression: `attacks.gradient_poisoning_attack`
  (projected Adam on the poison features, implicit derivative of `fit_linear`) against
  `attacks.model_targeted_attack` towards a label-flip target model
  (`attacks.indiscriminate_targets`, chosen on the attacker's validation data), both
  with the same number of points, plus the gradient attack's starting points (label-flipped
  copies of training points) as a floor.
* RBF kernel SVM: no follow-the-leader attack exists for it in the library (the
  model-targeted attack needs a linear model), so the implicit-gradient attack is
  compared with its starting points only. The gradient is implemented here: the dual
  solution $(\alpha, b)$ of `models.fit_kernel_svm` on clean + poison data satisfies
  $F = [\alpha - \operatorname{clip}(\alpha - (Q\alpha - \mathbf 1 + b y), 0, C);\
  y^\top\alpha] = 0$, and `solvers.attach_implicit_grad` (dense adjoint solve)
  differentiates the validation hinge loss through it.

All attacks see only the training and the attacker's validation data; test accuracy of
the retrained victim is measured at the end.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxpoison.experiments import RecipeContext, Report, Table, recipe

REG = 0.01
FASHION_PAIR = (0, 6)        # T-shirt/top vs shirt


def _gradient_attack(X, y, Xv, yv, *, loss, budget, steps, key):
    from jaxpoison.attacks import gradient_poisoning_attack

    return gradient_poisoning_attack(X, y, Xv, yv, loss=loss, reg=REG, lower=0.0, upper=1.0,
                                     budget=budget, steps=steps, lr=0.05, key=key)


def _mta(X, y, Xv, yv, *, loss, budget, key, target_error):
    from jaxpoison.attacks import indiscriminate_targets, model_targeted_attack

    tm = indiscriminate_targets(X, y, loss=loss, reg=REG, target_errors=(target_error,),
                                quantiles=(0.1, 0.2, 0.3, 0.4, 0.5),
                                repeats=(1, 2, 4, 8, 16), X_eval=Xv, y_eval=yv,
                                throw=False)
    target = tm.target(0)
    res = model_targeted_attack(X, y, target, loss=loss, reg=REG, lower=0.0, upper=1.0,
                                budget=budget, key=key, throw=False)
    return res, target


def _victim_accuracy(X, y, Xp, yp, Xt, yt, loss):
    from jaxpoison.models import fit_linear

    Xa = np.vstack([X, np.asarray(Xp)])
    ya = np.r_[y, np.asarray(yp)]
    return float(fit_linear(Xa, ya, loss=loss, reg=REG, throw=False).model.accuracy(Xt, yt))


# ---------------------------------------------------------------------------- kernel SVM


def _kkt_residual(sol, params):
    """F(alpha, b; X_all) of the SVM dual with the bias as the equality's multiplier."""
    alpha, b = sol
    K, y, C = params
    Q = (y[:, None] * y[None, :]) * K
    z = alpha - (Q @ alpha - 1.0 + b * y)
    return jnp.clip(z, 0.0, C) - alpha, y @ alpha


def _kernel_attack(X, y, Xv, yv, *, C, gamma, budget, steps, key, lr):
    """Projected Adam on kernel-SVM poison points, implicit gradient of the dual."""
    import optax

    from jaxpoison.models import fit_kernel_svm, kernel_matrix
    from jaxpoison.solvers import SMO, attach_implicit_grad

    n = X.shape[0]
    idx = np.asarray(jax.random.choice(key, n, (budget,), replace=False))
    Xp0, yp = X[idx].copy(), -y[idx]
    y_all = jnp.asarray(np.r_[y, yp], float)
    Xj, Xvj, yvj = jnp.asarray(X), jnp.asarray(Xv), jnp.asarray(yv, float)

    def objective(Xp, sol):
        X_all = jnp.concatenate([Xj, Xp])
        K = kernel_matrix(X_all, X_all, gamma)
        F = lambda s, p: _kkt_residual(s, p)   # noqa: E731
        alpha, b = attach_implicit_grad(F, sol, (K, y_all, jnp.asarray(C)), solve="dense")
        f = kernel_matrix(Xvj, X_all, gamma) @ (alpha * y_all) + b
        return jnp.mean(jnp.maximum(0.0, 1.0 - yvj * f))

    grad = jax.jit(jax.value_and_grad(objective))
    opt = optax.adam(lr)
    Xp = jnp.asarray(Xp0)
    state = opt.init(Xp)
    hist = []
    fits = 0
    for _ in range(steps):
        m = fit_kernel_svm(np.vstack([X, np.asarray(Xp)]), np.r_[y, yp], C=C, gamma=gamma,
                           solver=SMO(tol=1e-6), throw=False).model
        fits += 1
        val, g = grad(Xp, (m.alpha, m.intercept))
        hist.append(float(val))
        upd, state = opt.update(-g, state, Xp)
        Xp = jnp.clip(optax.apply_updates(Xp, upd), 0.0, 1.0)
    return np.asarray(Xp), yp, np.asarray(Xp0), hist, fits


def _kernel_accuracy(X, y, Xp, yp, Xt, yt, *, C, gamma):
    from jaxpoison.models import fit_kernel_svm
    from jaxpoison.solvers import SMO

    m = fit_kernel_svm(np.vstack([X, Xp]), np.r_[y, yp], C=C, gamma=gamma,
                       solver=SMO(tol=1e-6), throw=False).model
    return float(m.accuracy(Xt, yt))


# ---------------------------------------------------------------------------- data


def _breast_cancer(seed):
    from jaxpoison.datasets import load_breast_cancer

    X, y = load_breast_cancer(standardize=False)
    X = (X - X.min(0)) / (X.max(0) - X.min(0))
    p = np.random.default_rng(seed).permutation(len(y))
    X, y = X[p], y[p].astype(int)
    return X[:300], y[:300], X[300:400], y[300:400], X[400:], y[400:]


def _fashion(seed, n_train, n_val, n_test):
    from jaxpoison.datasets import load_fashion_mnist

    s = load_fashion_mnist()
    a, b = FASHION_PAIR
    rng = np.random.default_rng(seed)

    def pick(X, y, n):
        idx = np.flatnonzero((y == a) | (y == b))
        idx = rng.choice(idx, n, replace=False)
        # 2x2 average pooling: 784 -> 196 features in [0, 1] (speed)
        Xs = X[idx].reshape(-1, 14, 2, 14, 2).mean(axis=(2, 4)).reshape(len(idx), -1) / 255.0
        return Xs.astype(float), np.where(y[idx] == a, 1, -1)

    Xtr, ytr = pick(s.X_train, s.y_train, n_train + n_val)
    Xte, yte = pick(s.X_test, s.y_test, n_test)
    return Xtr[:n_train], ytr[:n_train], Xtr[n_train:], ytr[n_train:], Xte, yte


def _figure(path, curves):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.4), squeeze=False)
    for ax, (title, lines) in zip(axes[0], curves.items(), strict=True):
        for label, vals in lines.items():
            ax.plot(np.arange(len(vals)), vals, label=label)
        ax.set(title=title, xlabel="gradient step", ylabel="attacker's validation loss")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@recipe("metagrad-poison", "meta-gradients: bilevel poisoning (implicit gradients) of "
        "logistic regression, linear and RBF kernel SVM vs the follow-the-leader "
        "model-targeted attack at equal budget (breast cancer, Fashion-MNIST T-shirt/shirt)",
        part="meta-gradients")
def metagrad_poison(ctx: RecipeContext) -> Report:
    q = ctx.quick
    steps = 15 if q else 50
    key = jax.random.key(ctx.seed)
    sets = {"breast cancer": _breast_cancer(ctx.seed)}
    fm_sizes = (1000, 300, 2000)
    ctx_note = None
    if not q:
        try:
            sets["Fashion-MNIST T-shirt/shirt"] = _fashion(ctx.seed, *fm_sizes)
        except Exception as exc:   # missing data package: say so, run the rest
            ctx_note = "Fashion-MNIST skipped: " + str(exc)
    rows, krows, curves, notes = [], [], {}, []
    for dname, (X, y, Xv, yv, Xt, yt) in sets.items():
        budget = max(1, int(round(0.05 * len(y))))
        for loss in ctx.progress(("logistic", "hinge"), f"{dname}"):
            from jaxpoison.models import fit_linear

            clean = float(fit_linear(X, y, loss=loss, reg=REG, throw=False)
                          .model.accuracy(Xt, yt))
            t0 = time.perf_counter()
            ga = _gradient_attack(X, y, Xv, yv, loss=loss, budget=budget, steps=steps,
                                  key=key)
            t_ga = time.perf_counter() - t0
            t0 = time.perf_counter()
            mta, target = _mta(X, y, Xv, yv, loss=loss, budget=budget, key=key,
                               target_error=0.3)
            t_mta = time.perf_counter() - t0
            # the gradient attack's starting points: label-flipped copies drawn with `key`
            idx = np.asarray(jax.random.choice(key, len(y), (budget,),
                                               replace=budget > len(y)))
            acc_init = _victim_accuracy(X, y, X[idx], -y[idx], Xt, yt, loss)
            acc_ga = _victim_accuracy(X, y, ga.X_poison, ga.y_poison, Xt, yt, loss)
            acc_mta = _victim_accuracy(X, y, mta.X_poison, mta.y_poison, Xt, yt, loss)
            rows.append([dname, loss, len(y), budget, clean, acc_init, acc_ga, acc_mta,
                         f"{steps + 1} fits + {steps} adjoint solves ({t_ga:.1f} s)",
                         f"{int(mta.num_poison)} rounds: fit + max-loss ({t_mta:.1f} s)"])
            curves.setdefault(dname, {})[loss] = np.asarray(ga.val_loss)
        C, gamma = 1.0, 1.0 / X.shape[1]
        kb = budget
        ksteps = 10 if q else 30
        t0 = time.perf_counter()
        Xp, yp, Xp0, hist, fits = _kernel_attack(X, y, Xv, yv, C=C, gamma=gamma, budget=kb,
                                                 steps=ksteps, key=key, lr=0.3)
        t_k = time.perf_counter() - t0
        clean_k = _kernel_accuracy(X, y, np.zeros((0, X.shape[1])), np.zeros(0, int), Xt,
                                   yt, C=C, gamma=gamma)
        krows.append([dname, len(y), kb, clean_k,
                      _kernel_accuracy(X, y, Xp0, yp, Xt, yt, C=C, gamma=gamma),
                      _kernel_accuracy(X, y, Xp, yp, Xt, yt, C=C, gamma=gamma),
                      f"{hist[0]:.4f} -> {max(hist):.4f}",
                      f"{fits} SMO fits + {ksteps} dense adjoint solves ({t_k:.1f} s)"])
        curves.setdefault(dname, {})["RBF SVM (hinge val. loss)"] = np.asarray(hist)
    rep = Report("metagrad-poison", "Meta-gradients: bilevel poisoning vs follow-the-leader")
    rep.tables.append(Table(
        "Linear models: victim's test accuracy after poisoning (lower = stronger attack), "
        "equal budget (5 % of the training set)",
        ["data", "model", "n train", "budget", "clean", "flipped copies (start)",
         "implicit-gradient attack", "follow-the-leader (model-targeted)",
         "gradient attack cost", "model-targeted cost"], rows,
        caption=f"lambda = {REG}, box [0, 1]. Model-targeted target: label-flip "
                "target model with 30 % error on the attacker's validation data, run until "
                "the budget. Gradient attack: projected Adam, lr 0.05 of the box width, "
                f"{steps} steps, attacker's validation loss as objective."))
    rep.tables.append(Table(
        "RBF kernel SVM (C = 1, gamma = 1/d): test accuracy after poisoning, budget 5 %",
        ["data", "n train", "budget", "clean", "flipped copies (start)",
         "implicit-gradient attack", "attacker's val. hinge loss (start -> best)", "cost"],
        krows,
        caption="No follow-the-leader attack exists for the kernel SVM here; the starting "
                "points (label-flipped copies of training points) are the baseline."))
    fname = "metagrad-poison.png"
    if ctx.plotting:     # figures need matplotlib
        _figure(ctx.figure_path(fname), curves)
        rep.figures.append(fname)
    if "Fashion-MNIST T-shirt/shirt" in sets:
        notes.append(f"Fashion-MNIST: classes {FASHION_PAIR} subsampled to "
                     f"{fm_sizes[0]} train / {fm_sizes[1]} attacker validation / "
                     f"{fm_sizes[2]} test, 2x2 average-pooled to 14x14 = 196 features "
                     "(speed)")
    if ctx_note:
        notes.append(ctx_note)
    if ctx.quick:
        notes.append("quick mode: breast cancer only (Fashion-MNIST in the full run)")
    rep.notes += notes
    return rep
