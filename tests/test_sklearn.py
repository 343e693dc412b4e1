"""scikit-learn estimators (`jaxpoison.sklearn`): scikit-learn's own estimator checks, label
encodings, pipelines and grid search, and agreement with scikit-learn's SVC / LinearSVC /
LogisticRegression on the same problems."""

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import make_blobs, make_classification  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.svm import SVC, LinearSVC  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from jaxpoison.sklearn import (  # noqa: E402
    FloralClassifier,
    KernelSVMClassifier,
    LinearClassifier,
    PartitionEnsembleClassifier,
)

# Small iteration counts keep scikit-learn's ~55 checks per estimator quick (most of their
# time is compiling for each new data shape); none of the checks needs more.
ESTIMATORS = [
    KernelSVMClassifier(),
    LinearClassifier(loss="hinge"),
    LinearClassifier(loss="logistic"),
    FloralClassifier(steps=50, lr=1e-2),
    PartitionEnsembleClassifier(k=5, epochs=20),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def _binary(seed=0, n=120):
    X, y = make_classification(n_samples=n, n_features=5, n_informative=3, random_state=seed)
    return StandardScaler().fit_transform(X), y


@pytest.mark.parametrize("labels", [np.array(["cat", "dog"]), np.array([-3, 7]),
                                    np.array([False, True])])
def test_binary_label_encodings_give_the_same_model(labels):
    X, y01 = _binary()
    ref = KernelSVMClassifier(C=1.0).fit(X, y01)
    est = KernelSVMClassifier(C=1.0).fit(X, labels[y01])
    assert list(est.classes_) == sorted(labels)
    np.testing.assert_allclose(est.decision_function(X), ref.decision_function(X), atol=1e-9)
    assert (est.predict(X) == labels[ref.predict(X)]).all()


def test_kernel_svm_matches_sklearn_svc():
    X, y = _binary(1)
    y = np.where(y == 1, "pos", "neg")
    ours = KernelSVMClassifier(C=2.0, gamma=0.3, tol=1e-6).fit(X, y)
    ref = SVC(C=2.0, gamma=0.3, tol=1e-6).fit(X, y)
    assert list(ours.classes_) == list(ref.classes_)
    np.testing.assert_allclose(ours.decision_function(X), ref.decision_function(X),
                               atol=1e-4)


@pytest.mark.parametrize("loss", ["hinge", "logistic"])
def test_linear_matches_liblinear(loss):
    X, y = _binary(2)
    n, reg = len(y), 0.05
    ours = LinearClassifier(loss=loss, reg=reg).fit(X, y)
    if loss == "hinge":
        ref = LinearSVC(loss="hinge", C=1 / (n * reg), intercept_scaling=1, tol=1e-10,
                        max_iter=200_000).fit(X, y)
    else:
        ref = LogisticRegression(solver="liblinear", C=1 / (n * reg), intercept_scaling=1,
                                 tol=1e-10, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-3)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, atol=1e-3)


@pytest.mark.parametrize("make", [lambda: KernelSVMClassifier(C=1.0, gamma=0.3),
                                  lambda: LinearClassifier(loss="logistic", reg=0.05)])
def test_float32_input_fits_in_float32_and_agrees_with_float64(make):
    X, y = _binary(4)
    ref = make().fit(X, y)
    est = make().fit(X.astype(np.float32), y)
    assert est.model_.decision_function(X.astype(np.float32)).dtype == np.float32
    np.testing.assert_allclose(est.decision_function(X), ref.decision_function(X), atol=2e-3)
    assert (est.predict(X) == ref.predict(X)).mean() >= 0.98


def test_grid_search_in_a_pipeline_with_string_labels():
    X, y = _binary(3)
    y = np.array(["no", "yes"])[y]
    search = GridSearchCV(make_pipeline(StandardScaler(), LinearClassifier()),
                          {"linearclassifier__reg": [1e-3, 1e-1]}, cv=3)
    search.fit(X, y)
    assert search.best_params_["linearclassifier__reg"] in (1e-3, 1e-1)
    assert set(search.predict(X)) <= {"no", "yes"} and search.score(X, y) > 0.8
    twin = clone(search.best_estimator_)
    assert twin.get_params()["linearclassifier__reg"] == search.best_params_[
        "linearclassifier__reg"]


def test_floral_without_attacker_converges_to_sklearn_svc():
    # With a zero flip budget FLORAL is projected-gradient ascent on the SVM dual, so with
    # enough steps of size 1/lambda_max(K) it reaches libsvm's solution.
    X, y = make_blobs(n_samples=200, centers=[[-1.5, 0], [1.5, 0]], random_state=0)
    K = np.exp(-0.5 * ((X[:, None] - X[None]) ** 2).sum(-1))
    lr = 1 / np.linalg.eigvalsh(K)[-1]
    labels = np.array(["a", "b"])[y]
    ours = FloralClassifier(C=1.0, gamma=0.5, budget_fraction=0.0, steps=2000, lr=lr)
    ours.fit(X, labels)
    ref = SVC(C=1.0, gamma=0.5).fit(X, labels)
    np.testing.assert_allclose(ours.decision_function(X), ref.decision_function(X),
                               atol=0.03)
    assert (ours.predict(X) == ref.predict(X)).mean() >= 0.99
    assert ours.set_params(steps=10).get_params()["steps"] == 10
    with pytest.raises(ValueError, match="budget_fraction"):
        FloralClassifier(budget_fraction=1.5).fit(X, labels)


def test_partition_ensemble_certifies_against_brute_force_vote_margins():
    X, y = make_blobs(n_samples=300, centers=3, cluster_std=0.6, random_state=0)
    labels = np.array(["x", "y", "z"])[y]
    est = PartitionEnsembleClassifier(k=9, epochs=60, lr=0.1).fit(X, labels)
    cert = est.certify(X[:50], labels[:50])
    votes = est.base_predictions(X[:50])
    for i in range(50):
        counts = np.bincount(votes[i][votes[i] >= 0], minlength=3)
        pred = int(np.argmax(counts))
        assert est.predict(X[i:i + 1])[0] == est.classes_[pred]
        if est.classes_[pred] != labels[i]:
            assert int(cert.radius[i]) == -1
            continue
        # DPA: each removal/insertion changes one vote; the smallest number of vote moves
        # that lets a rival win (ties to the smaller class) is the certified radius + 1.
        best = min((counts[pred] - counts[c] - (c < pred)) // 2 for c in range(3) if c != pred)
        assert int(cert.radius[i]) == best
    with pytest.raises(ValueError, match="not seen in fit"):
        est.certify(X[:2], np.array(["x", "w"]))


def test_fa_ensemble_certificate_agrees_with_its_predictions():
    X, y = make_blobs(n_samples=200, centers=2, cluster_std=2.0, random_state=1)
    labels = np.array([10, 20])[y]
    fa = PartitionEnsembleClassifier(k=6, d=2, epochs=40).fit(X, labels)
    assert fa.base_predictions(X).shape == (200, 12)
    cert = fa.certify(X, labels)
    predicted = fa.predict(X)
    np.testing.assert_array_equal(fa.classes_[np.asarray(cert.prediction)], predicted)
    wrong = predicted != labels
    assert wrong.any() and (~wrong).any()
    np.testing.assert_array_equal(np.asarray(cert.radius) == -1, wrong)
