r"""scikit-learn estimators around jaxpoison's models and defenses.

Each estimator follows scikit-learn's contract (`fit` / `predict` / `decision_function` /
`score`, `get_params` / `set_params`, `clone`, pipelines, grid search) and passes
`sklearn.utils.estimator_checks.check_estimator`. Labels may be any values scikit-learn
accepts (strings, integers, booleans): `classes_` holds them sorted, and they are mapped to
the library's internal encoding — $\{-1, +1\}$ for the binary models (`classes_[0]`
$\to -1$, `classes_[1]` $\to +1$), class indices $0, \dots, C-1$ for the ensemble.

| estimator | wraps | classes |
|---|---|---|
| `KernelSVMClassifier` | `jaxpoison.models.fit_kernel_svm` | binary |
| `LinearClassifier` | `jaxpoison.models.fit_linear` (hinge or logistic) | binary |
| `FloralClassifier` | `jaxpoison.defenses.floral` (adversarial training) | binary |
| `PartitionEnsembleClassifier` | DPA / FA partitions, `train_ensemble`, certificates | any |

The fitted library object is kept in `model_` (or `ensemble_`), so everything the library
offers (dual variables, statuses, histories) stays reachable. Randomness follows
scikit-learn: an integer `random_state` becomes the library's required `key`
(`jax.random.key(random_state)`). Precision follows the library's rule (the dtype of the
inputs): float32 `X` is fitted in float32; any other `X` is converted to float64, which JAX
keeps when `jax_enable_x64` is on and rounds to float32 otherwise.

Needs scikit-learn (`pip install jaxpoison[sklearn]`).

```python
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from jaxpoison.sklearn import KernelSVMClassifier

search = GridSearchCV(make_pipeline(StandardScaler(), KernelSVMClassifier()),
                      {"kernelsvmclassifier__C": [0.1, 1.0, 10.0]}, cv=3)
search.fit(X, y)   # y may be strings
```
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from jaxpoison import SolverError, Status
from jaxpoison.defenses import (
    dpa_certify,
    dpa_partition,
    ensemble_predict,
    fa_certify,
    fa_partition,
    floral,
    train_ensemble,
    vote_counts,
)
from jaxpoison.models import MLP, LinearSolver, SoftmaxRegression, fit_kernel_svm, fit_linear
from jaxpoison.solvers import PGD, SMO

__all__ = [
    "KernelSVMClassifier",
    "LinearClassifier",
    "FloralClassifier",
    "PartitionEnsembleClassifier",
]


def _checked(result, what: str):
    """scikit-learn's convention for a solver that stopped at its iteration limit: a
    `ConvergenceWarning` (the result is still used); any other failed status raises
    `jaxpoison.SolverError`."""
    status = Status(int(np.max(np.asarray(result.status))))
    if status == Status.MAX_ITERATIONS:
        warnings.warn(f"{what} stopped at its iteration limit before reaching the tolerance; "
                      "raise max_iter or loosen tol", ConvergenceWarning, stacklevel=3)
    elif status != Status.SUCCESS:
        raise SolverError(what, status)
    return result


# float32 input stays float32 (the library computes in the dtype of its inputs); anything
# else becomes float64, which JAX keeps under x64 and rounds to float32 otherwise.
_FLOATS = (np.float64, np.float32)


def _float(X, dtype=None) -> jax.Array:
    """`X` as a JAX float array (in `dtype` when given)."""
    return jnp.asarray(np.asarray(X, dtype=dtype))


class _BinaryClassifier(ClassifierMixin, BaseEstimator):
    """Label handling shared by the binary estimators: `classes_[0]` is $-1$, `classes_[1]`
    is $+1$ inside the library."""

    def _validate_binary(self, X, y):
        X, y = validate_data(self, X, y, dtype=_FLOATS)
        check_classification_targets(y)
        y_type = type_of_target(y, input_name="y", raise_unknown=True)
        if y_type != "binary":
            raise ValueError("Only binary classification is supported. The type of the target "
                             f"is {y_type}.")
        self.classes_, index = np.unique(y, return_inverse=True)
        if len(self.classes_) != 2:
            raise ValueError(f"{type(self).__name__} needs samples of 2 classes in y; got "
                             f"{len(self.classes_)} class ({self.classes_[0]!r})")
        return X, np.where(index == 1, 1.0, -1.0).astype(X.dtype)

    def _scores(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=_FLOATS, reset=False)
        return np.asarray(self.model_.decision_function(_float(X)), dtype=np.float64)

    def decision_function(self, X) -> np.ndarray:
        """Signed scores `(n,)`: positive means `classes_[1]`."""
        return self._scores(X)

    def predict(self, X) -> np.ndarray:
        """Labels from `classes_` (a score of exactly 0 gives `classes_[1]`, as in the
        library's `predict`)."""
        positive = self._scores(X) >= 0
        return self.classes_[positive.astype(int)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags


class KernelSVMClassifier(_BinaryClassifier):
    r"""Binary kernel SVM: `jaxpoison.models.fit_kernel_svm` (the dual solved by SMO or
    projected gradient), the same optimum as `sklearn.svm.SVC`.

    $$
    \min_\alpha \tfrac12 \alpha^\top ((yy^\top)\circ K)\alpha - \mathbf 1^\top\alpha
    \ \text{s.t.}\ y^\top\alpha = 0,\ 0\le\alpha\le C.
    $$

    Args:
        C: box bound of the dual.
        kernel: `"rbf"`, `"linear"` or `"polynomial"`.
        gamma: kernel width, a positive number or `"scale"` / `"auto"` (sklearn semantics).
        degree: degree of the polynomial kernel.
        coef0: constant term of the polynomial kernel.
        solver: `"smo"` (`jaxpoison.solvers.SMO`) or `"pgd"` (`jaxpoison.solvers.PGD`).
        tol: stopping tolerance on the largest KKT violation.
        max_iter: iteration limit (`None`: the solver's default).

    Attributes:
        model_: the fitted `jaxpoison.models.KernelSVM`.
        fit_: the whole `jaxpoison.models.KernelSVMFit` (objective, gap, status).
        n_iter_: solver iterations.
        classes_: the two labels; `classes_[1]` is the positive class.

    A solve that stops at `max_iter` gives a `ConvergenceWarning` (as scikit-learn's
    solvers do); any other failed status raises `jaxpoison.SolverError`.
    """

    def __init__(self, C=1.0, kernel="rbf", gamma="scale", degree=3, coef0=0.0,
                 solver="smo", tol=1e-3, max_iter=None):
        self.C = C
        self.kernel = kernel
        self.gamma = gamma
        self.degree = degree
        self.coef0 = coef0
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter

    def fit(self, X, y):
        """Fit on `X` `(n, d)` and binary labels `y`; returns `self`."""
        X, ys = self._validate_binary(X, y)
        solvers = {"smo": SMO, "pgd": PGD}
        if self.solver not in solvers:
            raise ValueError(f"solver must be 'smo' or 'pgd'; got {self.solver!r}")
        options = {"tol": self.tol}
        if self.max_iter is not None:
            options["max_iter"] = self.max_iter
        self.fit_ = _checked(fit_kernel_svm(
            _float(X), _float(ys), C=self.C, kernel=self.kernel, gamma=self.gamma,
            degree=self.degree, coef0=self.coef0, solver=solvers[self.solver](**options),
            throw=False), "fit_kernel_svm")
        self.model_ = self.fit_.model
        self.n_iter_ = int(self.fit_.iterations)
        return self


class LinearClassifier(_BinaryClassifier):
    r"""L2-regularised linear SVM or logistic regression: `jaxpoison.models.fit_linear`.

    Minimises $\sum_i \ell(y_i(w^\top x_i+b)) + \tfrac{n\lambda}{2}(\lVert w\rVert^2+b^2)$
    with the hinge or logistic loss $\ell$ (liblinear's problem with
    $C = 1/(n\lambda)$, intercept penalised).

    Args:
        loss: `"hinge"` or `"logistic"`.
        reg: $\lambda > 0$.
        tol: stopping tolerance of `jaxpoison.models.LinearSolver` (`None`: its default for
            the loss and precision).
        max_iter: epochs (hinge) or Newton steps (logistic); `None`: the default.

    Attributes:
        model_: the fitted `jaxpoison.models.LinearModel`.
        fit_: the whole `jaxpoison.models.LinearFit` (dual variables, status, objective).
        coef_, intercept_: $w$ `(1, d)` and $b$ `(1,)`, as in scikit-learn's linear models.
        n_iter_: epochs (hinge) or Newton steps (logistic) run.
        classes_: the two labels; `classes_[1]` is the positive class.

    A solve that stops at `max_iter` gives a `ConvergenceWarning`; any other failed status
    raises `jaxpoison.SolverError`.
    """

    def __init__(self, loss="hinge", reg=1e-2, tol=None, max_iter=None):
        self.loss = loss
        self.reg = reg
        self.tol = tol
        self.max_iter = max_iter

    def fit(self, X, y):
        """Fit on `X` `(n, d)` and binary labels `y`; returns `self`."""
        X, ys = self._validate_binary(X, y)
        solver = LinearSolver(tol=self.tol, max_iter=self.max_iter)
        self.fit_ = _checked(fit_linear(_float(X), _float(ys), loss=self.loss, reg=self.reg,
                                        solver=solver, throw=False),
                             f"fit_linear(loss={self.loss!r})")
        self.model_ = self.fit_.model
        self.n_iter_ = int(self.fit_.iterations)
        self.coef_ = np.asarray(self.model_.w, dtype=np.float64)[None, :]
        self.intercept_ = np.atleast_1d(np.asarray(self.model_.b, dtype=np.float64))
        return self


class FloralClassifier(_BinaryClassifier):
    r"""FLORAL adversarial training (Bal, Cevher & Muehlebach, ICLR 2025):
    `jaxpoison.defenses.floral`.

    A kernel SVM trained as a game against a label-flipping attacker that flips
    `budget = floor(budget_fraction * n)` training labels among the support vectors each step;
    the defender takes a projected-gradient step on the SVM dual. The final model is the
    last step's (not selected on any test data).

    Args:
        C: box bound of the SVM dual.
        kernel: `"rbf"`, `"linear"` or `"polynomial"`.
        gamma: kernel width (as in `KernelSVMClassifier`).
        degree: degree of the polynomial kernel.
        coef0: constant term of the polynomial kernel.
        budget_fraction: the attacker's per-step flip budget as a fraction of `n`.
        steps: number of game steps $T$.
        lr: step size $\eta$ of the projected-gradient step.
        random_state: seed of the attacker's draws (`jax.random.key(random_state)`).

    Attributes:
        model_: the final `jaxpoison.models.KernelSVM`.
        result_: the whole `jaxpoison.defenses.FloralResult` (history, attacker's labels).
        classes_: the two labels; `classes_[1]` is the positive class.
    """

    def __init__(self, C=10.0, kernel="rbf", gamma="scale", degree=3, coef0=0.0,
                 budget_fraction=0.05, steps=500, lr=1e-3, random_state=0):
        self.C = C
        self.kernel = kernel
        self.gamma = gamma
        self.degree = degree
        self.coef0 = coef0
        self.budget_fraction = budget_fraction
        self.steps = steps
        self.lr = lr
        self.random_state = random_state

    def fit(self, X, y):
        """Fit on `X` `(n, d)` and (possibly poisoned) binary labels `y`; returns `self`."""
        X, ys = self._validate_binary(X, y)
        if not 0.0 <= self.budget_fraction <= 1.0:
            raise ValueError(f"budget_fraction must be in [0, 1]; got {self.budget_fraction!r}")
        budget = int(np.floor(self.budget_fraction * len(ys)))
        self.result_ = floral(_float(X), _float(ys), C=self.C, kernel=self.kernel,
                              gamma=self.gamma, degree=self.degree, coef0=self.coef0,
                              budget=budget, steps=self.steps, lr=self.lr,
                              key=jax.random.key(_seed(self.random_state)))
        self.model_ = self.result_.model
        return self


def _seed(random_state) -> int:
    if random_state is None:
        return 0
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31 - 1))
    return int(random_state)


class PartitionEnsembleClassifier(ClassifierMixin, BaseEstimator):
    r"""A certifiably robust ensemble: Deep Partition Aggregation (Levine & Feizi, ICLR 2021)
    or Finite Aggregation (Wang, Levine & Feizi, ICML 2022).

    The training set is split by a hash of each sample into `k` parts (DPA, `d = 1`) or
    `k * d` subsets (FA, each learner trained on `d` of them); one base learner is trained
    per part in a single vmapped call (`jaxpoison.defenses.train_ensemble`) and the ensemble
    predicts the most voted class (ties to the smaller class index). `certify(X, y)` returns
    how many inserted or removed training samples each correct prediction provably survives.

    Args:
        k: number of partitions.
        d: FA spread (`1`: DPA).
        learner: base learner, `"softmax"` (softmax regression) or `"mlp"`.
        reg: L2 penalty of the base learners' weights.
        hidden: MLP width (ignored by softmax regression).
        epochs: training epochs of every base learner.
        lr: Adam step size.
        hash: sample hash of the partition, `"bytes"` (any features) or `"pixel_sum"`
            (integer pixel values, as in the papers).
        random_state: seed of the learners' initialisation and batches.

    Attributes:
        ensemble_: the trained `jaxpoison.defenses.Ensemble`.
        partition_: the `jaxpoison.defenses.Partition` of the training set.
        learner_: the base learner (hyperparameters).
        classes_: the labels; `classes_[i]` is class index `i` inside the library.
    """

    def __init__(self, k=10, d=1, learner="softmax", reg=1e-3, hidden=32, epochs=50,
                 lr=5e-2, hash="bytes", random_state=0):
        self.k = k
        self.d = d
        self.learner = learner
        self.reg = reg
        self.hidden = hidden
        self.epochs = epochs
        self.lr = lr
        self.hash = hash
        self.random_state = random_state

    def fit(self, X, y):
        """Partition `X` `(n, d)`, `y`, and train one base learner per part; returns `self`."""
        X, y = validate_data(self, X, y, dtype=_FLOATS)
        check_classification_targets(y)
        self.classes_, index = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"PartitionEnsembleClassifier needs samples of at least 2 "
                             f"classes in y; got 1 class ({self.classes_[0]!r})")
        num_classes, num_features = len(self.classes_), X.shape[1]
        if self.learner == "softmax":
            self.learner_ = SoftmaxRegression(num_classes, num_features, reg=self.reg)
        elif self.learner == "mlp":
            self.learner_ = MLP(num_classes, num_features, reg=self.reg, width=self.hidden)
        else:
            raise ValueError(f"learner must be 'softmax' or 'mlp'; got {self.learner!r}")
        if self.d == 1:
            self.partition_ = dpa_partition(X, index, self.k, hash=self.hash, warn=False)
        else:
            self.partition_ = fa_partition(X, index, self.k, self.d, hash=self.hash,
                                           warn=False)
        self.ensemble_ = train_ensemble(self.learner_, _float(X), jnp.asarray(index),
                                        self.partition_, key=jax.random.key(
                                            _seed(self.random_state)),
                                        epochs=self.epochs, lr=self.lr)
        return self

    def base_predictions(self, X) -> np.ndarray:
        """`(n, number of learners)` class indices of every base learner (abstentions as
        `ensemble_predict` returns them)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=_FLOATS, reset=False)
        return np.asarray(ensemble_predict(self.learner_, self.ensemble_, _float(X)))

    def decision_function(self, X) -> np.ndarray:
        """Vote counts `(n, n_classes)` (for two classes: the vote difference
        `votes[:, 1] - votes[:, 0]`, positive for `classes_[1]`)."""
        votes = np.asarray(vote_counts(self.base_predictions(X), len(self.classes_)))
        if len(self.classes_) == 2:
            return (votes[:, 1] - votes[:, 0]).astype(np.float64)
        return votes.astype(np.float64)

    def predict(self, X) -> np.ndarray:
        """The most voted label (ties to the label that sorts first)."""
        votes = np.asarray(vote_counts(self.base_predictions(X), len(self.classes_)))
        return self.classes_[np.argmax(votes, axis=1)]

    def certify(self, X, y):
        """The DPA (`d = 1`) or FA certificate of the predictions on `X` against labels `y`.

        Returns:
            `jaxpoison.defenses.Certificate`: `radius` `(n,)` is the number of training
            insertions + removals each prediction provably survives (`-1` where the
            prediction is wrong); `prediction` holds class indices into `classes_`.
        """
        preds = self.base_predictions(X)
        y = np.asarray(y)
        if y.shape != (len(preds),):
            raise ValueError(f"y must have shape ({len(preds)},) like the rows of X; got "
                             f"{y.shape}")
        index = np.searchsorted(self.classes_, y)
        index = np.minimum(index, len(self.classes_) - 1)
        unknown = self.classes_[index] != y
        if unknown.any():
            raise ValueError(f"y has labels not seen in fit: {sorted(set(y[unknown]))!r}; "
                             f"known: {list(self.classes_)!r}")
        if self.d == 1:
            return dpa_certify(preds, index, len(self.classes_))
        return fa_certify(preds, index, len(self.classes_), d=self.d,
                          shifts=self.partition_.shifts)
