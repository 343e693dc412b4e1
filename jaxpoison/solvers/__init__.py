"""Generic numerics (LP, QP / SVM-dual, implicit differentiation); knows nothing about poisoning."""
from jaxpoison.solvers.implicit import attach_implicit_grad as attach_implicit_grad
