"""Recipe `pcm-reviews`: PCM on real text (Amazon Fine Foods preference pairs, MiniLM).

Pairs: chosen = a "great" review, rejected = another review of the same product
(`jaxpoison.datasets.review_preference_pairs`); features: all-MiniLM-L6-v2 sentence
embeddings (384-d, `jaxpoison.datasets.embed_texts`), `φ_i = e(chosen) - e(rejected)`.
Clean Bradley--Terry reward on `θ_O = 1`, RLHFPoison (5% of N flipped towards longer
responses), then PCM; flips before and after, reward equality, length preference, and
discretisation to m annotations per pair.
"""

from __future__ import annotations

import numpy as np

from jaxpoison.attacks import discretize, pcm, pcm_lower_bound, pcm_upper_bound, rlhf_poison
from jaxpoison.datasets import embed_texts, review_preference_pairs
from jaxpoison.experiments import RecipeContext, Report, Table, recipe
from jaxpoison.models import fit_bradley_terry

REG = 1e-3
M_ANNOT = 5  # annotations per pair for the paper's flip rate


def _prefers_longer(reward, phi, chosen_len, rejected_len):
    """Fraction of pairs (with different lengths) where the reward ranks the longer higher."""
    s = np.asarray(reward) @ phi        # score(chosen) - score(rejected)
    longer_is_chosen = chosen_len > rejected_len
    diff = chosen_len != rejected_len
    prefers = np.where(longer_is_chosen, s > 0, s < 0)
    return float(np.mean(prefers[diff]))


@recipe("pcm-reviews", "PCM on Amazon Fine Foods preference pairs embedded by MiniLM: "
        "RLHFPoison, flips before/after, reward equality, discretisation", part="PCM")
def pcm_reviews(ctx: RecipeContext) -> Report:
    pairs = review_preference_pairs(seed=ctx.seed, max_pairs=600 if ctx.quick else None)
    n_pairs = len(pairs.chosen)
    texts = list(pairs.chosen) + list(pairs.rejected)
    emb = embed_texts(texts)
    phi = (emb[:n_pairs] - emb[n_pairs:]).T.astype(np.float64)     # (384, N)
    cl = np.asarray(pairs.chosen_length, float)
    rl = np.asarray(pairs.rejected_length, float)
    n, N = phi.shape
    theta_o = np.ones(N)
    r_o = fit_bradley_terry(phi, theta_o, reg=REG).reward
    attacks = {}
    for frac in ((0.05,) if ctx.quick else (0.02, 0.05, 0.10)):
        # both directions: largest length gaps (our default) and smallest (authors' code)
        for largest, tag in ((True, "largest gaps"), (False, "smallest gaps")):
            attacks[f"RLHFPoison {int(frac * 100)}% {tag}"] = np.asarray(
                rlhf_poison(phi, theta_o, r_o, cl, rl, budget_fraction=frac,
                            largest_gap=largest).theta)
    # feature sets: the 384-d embedding differences, and their top-32 principal directions
    # (a smaller reward model, where N/n is larger)
    _, _, vt = np.linalg.svd(phi.T - phi.T.mean(0), full_matrices=False)
    feats = {"MiniLM-384": phi, "PCA-32": vt[:32] @ phi}
    rows, disc_rows, data = [], [], {}
    jobs = [(a, f) for a in attacks for f in feats] + [(a, "adaptive r_A") for a in attacks]
    for name, fname in ctx.progress(jobs, desc="pcm-reviews"):
        theta_a = attacks[name]
        F = feats.get(fname, phi)
        r_o_f = fit_bradley_terry(F, theta_o, reg=REG).reward
        r_a = fit_bradley_terry(F, theta_a, reg=REG).reward
        if fname == "adaptive r_A":   # keep only r_A^T Φ θ = r_A^T Φ θ_A
            res = pcm(F, theta_o, theta_a, adaptive_embedding=r_a)
            lb = ub = float("nan")
        else:
            res = pcm(F, theta_o, theta_a)
            lb = float(pcm_lower_bound(F, theta_o, theta_a).bound)
            ub = float(pcm_upper_bound(F, theta_o, theta_a).bound)
        r_s = fit_bradley_terry(F, res.theta, reg=REG).reward
        rel = float(np.linalg.norm(r_s - r_a) / np.linalg.norm(r_a))
        label = f"{name}, {fname}"
        # the paper's flip rate: flipped annotations out of m N after rounding to m = 5
        rate = float(discretize(res.theta, M_ANNOT, theta_orig=theta_o).flip_rate)
        naive_rate = float(discretize(theta_a, M_ANNOT, theta_orig=theta_o).flip_rate)
        rows.append([label, N, F.shape[0] if fname != "adaptive r_A" else 1,
                     int(res.naive_flips), float(res.cost), int(res.flips), naive_rate, rate,
                     lb, ub, float(res.residual), rel, _prefers_longer(r_o_f, F, cl, rl),
                     _prefers_longer(r_a, F, cl, rl), _prefers_longer(r_s, F, cl, rl)])
        data[label] = dict(theta_star=np.asarray(res.theta))
        if fname == "adaptive r_A":
            continue
        for m in (1, 3, 5, 10):
            d = discretize(res.theta, m, phi=F)
            r_m = fit_bradley_terry(F, d.theta, reg=REG).reward
            changed = int(np.sum(np.abs(np.asarray(d.theta) - theta_o) > 0))
            annot = float(np.sum(m - np.asarray(d.counts)))   # flipped annotations
            disc_rows.append([label, m, changed, annot / m, float(d.gradient_error),
                              float(np.linalg.norm(r_m - r_a) / np.linalg.norm(r_a)),
                              _prefers_longer(r_m, F, cl, rl)])
    main = Table(
        "PCM on Amazon Fine Foods preference pairs (MiniLM features)",
        ["attack, features", "N", "rows kept", "naive flips", "PCM cost", "PCM touched pairs",
         f"naive flip rate (m={M_ANNOT})", f"PCM flip rate (m={M_ANNOT})", "LB sharp",
         "UB (ours)",
         "||Φθ*-Φθ_A||", "||r*-r_A||/||r_A||", "longer preferred: clean", "poisoned (θ_A)",
         "PCM (θ*)"],
        rows,
        caption="θ_O = 1 (chosen = 'great' review); Bradley-Terry with reg = 1e-3; "
        "RLHFPoison flips the largest length gaps (our default) or the smallest (the authors' "
        "code); 'touched pairs' counts every pair whose label changed at all, 'flip rate' is "
        f"the paper's: flipped annotations out of m·N after rounding to m = {M_ANNOT}; UB is "
        "our upper bound (not the paper's Theorem 3); 'longer "
        "preferred' = fraction of pairs of unequal length where the reward ranks the longer "
        "response higher; 'adaptive r_A' keeps only r_A^T Φθ = r_A^T Φθ_A (MiniLM-384), so "
        "its reward is equal only along r_A.",
    )
    disc = Table(
        "Discretising θ* to m annotations per pair",
        ["attack", "m", "pairs changed", "annotation flips / m", "||Φ(θ_m-θ*)||",
         "||r_m-r_A||/||r_A||", "longer preferred"],
        disc_rows,
    )
    fig = "pcm-reviews.png"
    if ctx.plotting:
        _plot(rows, disc_rows, ctx.figure_path(fig))
    return Report("pcm-reviews", "PCM on real text: Amazon Fine Foods preference pairs",
                  tables=[main, disc], figures=[fig], data={"rows": rows})


def _plot(rows, disc_rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = [r[0] for r in rows]
    x = np.arange(len(rows))
    a1.bar(x - 0.2, [r[3] for r in rows], 0.4, label="naive flips (θ_A)")
    a1.bar(x + 0.2, [r[4] for r in rows], 0.4, label="PCM cost (θ*)")
    a1.set_xticks(x, names, rotation=30, ha="right", fontsize=7)
    a1.set_ylabel("flips")
    a1.legend()
    a1.set_title("Cost of the same poisoned reward")
    for name in dict.fromkeys(d[0] for d in disc_rows):
        sel = [d for d in disc_rows if d[0] == name]
        a2.plot([d[1] for d in sel], [d[5] for d in sel], "o-", label=name)
    a2.set_xscale("log")
    a2.set_xlabel("annotations per pair m")
    a2.set_ylabel("||r_m - r_A|| / ||r_A||")
    a2.set_title("Discretisation error of the reward")
    a2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
