"""Recipe `metagrad-flips`: the smoothed label-flip attacks (ALFA, ALFA-tilt in both
variants, greedy LFA) against the exact ones, as a function of the victim's C.

Moon data of Bal et al. (60 training and 100 validation points drawn with the seed; the
greedy attack, which refits n SVMs per step, on the first 30 / 40 of them). For every C
on a grid the exact attack (`attacks.alfa`, `attacks.alfa_tilt`, `attacks.greedy_lfa`,
SMO fits) picks its flips, the victim is refitted by SMO on them and its mean logistic
validation loss is recorded; the smoothed closures (`smooth_alfa_validation_loss`, ...)
are evaluated on the same grid at several scales. Reported: the largest jump between grid
neighbours, the agreement of `smoothing="exact"` with the exact attack's flips, and
reverse-mode derivatives in C against central differences at several steps.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxpoison.experiments import RecipeContext, Report, Table, recipe

BUDGET, GREEDY_BUDGET = 6, 4
STEPS, GREEDY_STEPS = 300, 300
SCALES = (0.1, 0.3, 1.0)
FD_STEPS = (1e-3, 1e-4, 1e-5, 1e-6)


def _attacks():
    from jaxpoison.attacks import (
        alfa,
        alfa_tilt,
        greedy_lfa,
        smooth_alfa,
        smooth_alfa_tilt,
        smooth_alfa_tilt_validation_loss,
        smooth_alfa_validation_loss,
        smooth_greedy_lfa,
        smooth_greedy_lfa_validation_loss,
    )

    key = jax.random.key(3)
    return {
        "ALFA": dict(
            exact=lambda X, y, Xv, yv, C, solver: alfa(
                X, y, budget=BUDGET, C=C, gamma=1.0, solver=solver, throw=False),
            smooth=lambda X, y, Xv, yv, C, **kw: smooth_alfa_validation_loss(
                X, y, Xv, yv, budget=BUDGET, C=C, gamma=1.0, steps=STEPS, alternations=4,
                **kw),
            hard=lambda X, y, Xv, yv, C: smooth_alfa(
                X, y, budget=BUDGET, C=C, gamma=1.0, steps=STEPS, alternations=4,
                smoothing="exact"),
            small=False),
        "ALFA-tilt (authors)": dict(
            exact=lambda X, y, Xv, yv, C, solver: alfa_tilt(
                X, y, budget=BUDGET, C=C, gamma=1.0, solver=solver),
            smooth=lambda X, y, Xv, yv, C, **kw: smooth_alfa_tilt_validation_loss(
                X, y, Xv, yv, budget=BUDGET, C=C, gamma=1.0, steps=STEPS, **kw),
            hard=lambda X, y, Xv, yv, C: smooth_alfa_tilt(
                X, y, budget=BUDGET, C=C, gamma=1.0, steps=STEPS, smoothing="exact"),
            small=False),
        "ALFA-tilt (xiao, 5 classifiers)": dict(
            exact=lambda X, y, Xv, yv, C, solver: alfa_tilt(
                X, y, budget=BUDGET, C=C, gamma=1.0, variant="xiao", key=key, num_trials=5,
                solver=solver),
            smooth=lambda X, y, Xv, yv, C, **kw: smooth_alfa_tilt_validation_loss(
                X, y, Xv, yv, budget=BUDGET, C=C, gamma=1.0, steps=STEPS, variant="xiao",
                key=key, num_trials=5, **kw),
            hard=lambda X, y, Xv, yv, C: smooth_alfa_tilt(
                X, y, budget=BUDGET, C=C, gamma=1.0, steps=STEPS, variant="xiao", key=key,
                num_trials=5, smoothing="exact"),
            small=False),
        "greedy LFA": dict(
            exact=lambda X, y, Xv, yv, C, solver: greedy_lfa(
                X, y, Xv, yv, budget=GREEDY_BUDGET, C=C, gamma=1.0, solver=solver),
            smooth=lambda X, y, Xv, yv, C, **kw: smooth_greedy_lfa_validation_loss(
                X, y, Xv, yv, budget=GREEDY_BUDGET, C=C, gamma=1.0, steps=GREEDY_STEPS, **kw),
            hard=lambda X, y, Xv, yv, C: smooth_greedy_lfa(
                X, y, Xv, yv, budget=GREEDY_BUDGET, C=C, gamma=1.0, steps=GREEDY_STEPS,
                smoothing="exact"),
            small=True),
    }


def _exact_loss(X, labels, C, Xv, yv, solver):
    from jaxpoison.models import fit_kernel_svm

    m = fit_kernel_svm(X, np.asarray(labels), C=C, gamma=1.0, solver=solver).model
    return float(jnp.mean(jax.nn.softplus(-yv * m.decision_function(Xv))))


def _figure(path, curves, grid):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(3.2 * len(curves), 3.2), sharey=False)
    for ax, (name, series) in zip(np.atleast_1d(axes), curves.items(), strict=True):
        for label, values in series.items():
            ax.plot(grid, values, label=label, lw=1.2 if label != "exact" else 1.6,
                    drawstyle="steps-mid" if label == "exact" else "default")
        ax.set(title=name, xlabel="C")
    np.atleast_1d(axes)[0].set_ylabel("victim's validation loss")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@recipe("metagrad-flips", "meta-gradients: smoothed ALFA, ALFA-tilt and greedy LFA vs the "
        "exact attacks (loss-vs-C jumps, flips at the exact limit, gradient vs finite "
        "differences)", part="meta-gradients")
def metagrad_flips(ctx: RecipeContext) -> Report:
    from jaxpoison.datasets import load_floral_moon
    from jaxpoison.solvers import SMO

    solver = SMO(tol=1e-8)
    data = load_floral_moon()
    rng = np.random.default_rng(ctx.seed)
    tr = rng.choice(len(data.y_train), 60, replace=False)
    va = rng.choice(len(data.y_val), 100, replace=False)
    big = (jnp.asarray(data.X_train[tr], float), np.asarray(data.y_train[tr]),
           jnp.asarray(data.X_val[va], float), np.asarray(data.y_val[va]))
    small = (big[0][:30], big[1][:30], big[2][:40], big[3][:40])
    grid = np.linspace(0.5, 2.0, 61 if ctx.quick else 301)
    attacks = _attacks()
    if ctx.quick:
        attacks = {k: attacks[k] for k in ("ALFA", "greedy LFA")}

    jump_rows, exact_rows, grad_rows, curves, times = [], [], [], {}, {}
    for name, spec in ctx.progress(list(attacks.items()), "attacks"):
        X, y, Xv, yv = small if spec["small"] else big
        t0 = time.perf_counter()
        flips, ex = [], []
        for C in grid:
            res = spec["exact"](X, y, Xv, yv, float(C), solver)
            flips.append(np.asarray(res.flipped))
            ex.append(_exact_loss(X, res.labels, float(C), Xv, yv, solver))
        t_exact = time.perf_counter() - t0
        ex = np.asarray(ex)
        series = {"exact": ex}
        jump_rows.append([name, "exact attack + SMO refit", "-", float(ex.min()),
                          float(ex.max()), float(np.max(np.abs(np.diff(ex))))])
        # the exact limit of the smoothed attack: hard picks on unrolled fits
        hard = jax.jit(jax.vmap(lambda c, spec=spec, X=X, y=y, Xv=Xv, yv=yv: spec["smooth"](
            X, y, Xv, yv, c, smoothing="exact")))
        h = np.asarray(hard(jnp.asarray(grid)))
        jump_rows.append([name, "smoothed closure, smoothing='exact'", "-", float(h.min()),
                          float(h.max()), float(np.max(np.abs(np.diff(h))))])
        t0 = time.perf_counter()
        for scale in SCALES:
            f = jax.jit(jax.vmap(lambda c, spec=spec, X=X, y=y, Xv=Xv, yv=yv, s=scale:
                                 spec["smooth"](X, y, Xv, yv, c, scale=s)))
            s = np.asarray(f(jnp.asarray(grid)))
            series[f"scale {scale}"] = s
            jump_rows.append([name, "smoothed, entropic", scale, float(s.min()),
                              float(s.max()), float(np.max(np.abs(np.diff(s))))])
        times[name] = (t_exact, time.perf_counter() - t0)
        curves[name] = series
        agree = sum(bool(np.array_equal(np.asarray(spec["hard"](X, y, Xv, yv, float(C))
                                               .flip_prob) > 0.5, ref))
                    for C, ref in zip(grid, flips, strict=True))
        exact_rows.append([name, len(grid), float(np.max(np.abs(h - ex))),
                           f"{agree} / {len(grid)}"])
        vg = jax.jit(jax.value_and_grad(lambda c, spec=spec, X=X, y=y, Xv=Xv, yv=yv:
                                        spec["smooth"](X, y, Xv, yv, c, scale=0.3)))
        g = float(vg(1.0)[1])
        fds = [(float(vg(1.0 + e)[0]) - float(vg(1.0 - e)[0])) / (2 * e) for e in FD_STEPS]
        grad_rows.append([name, g] + fds)

    rep = Report("metagrad-flips", "Meta-gradients: smoothed label-flip attacks")
    n_big, n_small = len(big[1]), len(small[1])
    rep.tables.append(Table(
        f"Victim's validation loss over C in [{grid[0]}, {grid[-1]}] ({len(grid)} points, "
        f"step {grid[1] - grid[0]:.3g}), gamma = 1",
        ["attack", "loss", "scale", "min", "max", "max jump between neighbours"], jump_rows,
        caption=f"Moon data: {n_big} training / {len(big[3])} validation points "
                f"(greedy LFA: {n_small} / {len(small[3])}); budget {BUDGET} flips "
                f"(greedy: {GREEDY_BUDGET}); smoothed fits: {STEPS} unrolled dual steps "
                f"(greedy: {GREEDY_STEPS}); ALFA: 4 alternations. The victim's loss is the "
                "mean logistic loss of the SVM refitted on the poisoned labels."))
    rep.tables.append(Table(
        "The exact limit: smoothing='exact' (hard picks on unrolled fits) vs the exact "
        "attack (SMO fits)",
        ["attack", "grid points", "max |loss difference|",
         "grid points with identical flips"], exact_rows,
        caption="Flips compared as the rounded flip probabilities of the smoothed attack "
                "with smoothing='exact' against the exact attack's flip mask."))
    rep.tables.append(Table(
        "d loss / d C at C = 1 (entropic, scale 0.3): reverse mode vs central differences",
        ["attack", "reverse mode"] + [f"central difference, step {e:g}" for e in FD_STEPS],
        grad_rows,
        caption="The smoothed loss is continuous and piecewise smooth: the unrolled dual's "
                "clip to [0, C] leaves kinks at a fine spacing, so a central difference "
                "over a wide step averages slopes across them."))
    fname = "metagrad-flips.png"
    if ctx.plotting:
        _figure(ctx.figure_path(fname), curves, grid)
        rep.figures.append(fname)
    for name, (te, ts) in times.items():
        rep.notes.append(f"{name}: wall time in this process, {len(grid)} exact attacks + SMO "
                         f"refits {te:.1f} s, {len(SCALES)} smoothed curves (vmap over the "
                         f"grid, compilation included) {ts:.1f} s")
    if ctx.quick:
        rep.notes.append("quick mode: ALFA and greedy LFA only, 61 grid points")
    rep.data["grid"] = grid
    rep.data["curves"] = {k: {kk: np.asarray(vv) for kk, vv in v.items()}
                          for k, v in curves.items()}
    return rep

