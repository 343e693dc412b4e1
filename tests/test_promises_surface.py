"""Promises of the user-facing surface (hypothesis): report tables stay tables whatever their
cells hold, and the scikit-learn estimators treat any pair of labels alike."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxpoison.experiments import Table

markdown = pytest.importorskip("markdown")

FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
FITS = settings(max_examples=8, deadline=None)

# Cells: any printable text, including |, backslashes, backticks and line breaks.
cell = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc"),
                                      whitelist_characters="|\\`\n"), max_size=12)


@FAST
@given(headers=st.lists(cell.filter(lambda s: s.strip()), min_size=1, max_size=4),
       data=st.data())
def test_markdown_table_keeps_one_cell_per_column(headers, data):
    rows = data.draw(st.lists(st.lists(cell, min_size=len(headers), max_size=len(headers)),
                              min_size=1, max_size=3))
    html = markdown.markdown(Table("t", headers, rows).to_markdown(), extensions=["tables"])
    import re

    trs = re.findall(r"<tr>(.*?)</tr>", html, re.S)
    assert len(trs) == 1 + len(rows)
    assert all(len(re.findall(r"<t[hd]\b", tr)) == len(headers) for tr in trs)


@pytest.fixture(scope="module")
def reference():
    pytest.importorskip("sklearn")
    from sklearn.datasets import make_classification

    from jaxpoison.sklearn import KernelSVMClassifier

    X, y = make_classification(n_samples=60, n_features=4, random_state=0)
    return X, y, KernelSVMClassifier(C=1.0, gamma=0.5).fit(X, y)


labels = st.one_of(st.integers(-10**6, 10**6), st.text(min_size=1, max_size=5))


@FITS
@given(pair=st.lists(labels, min_size=2, max_size=2, unique=True).filter(
    lambda p: type(p[0]) is type(p[1])))
def test_any_two_labels_give_the_same_classifier(reference, pair):
    from jaxpoison.sklearn import KernelSVMClassifier

    X, y01, ref = reference
    classes = np.array(sorted(pair), dtype=object if isinstance(pair[0], str) else None)
    est = KernelSVMClassifier(C=1.0, gamma=0.5).fit(X, classes[y01])
    assert list(est.classes_) == list(classes)
    np.testing.assert_allclose(est.decision_function(X), ref.decision_function(X), atol=1e-9)
    assert list(est.predict(X)) == list(classes[ref.predict(X)])
