"""Generic numerics (LP, QP / SVM-dual, implicit differentiation); knows nothing about poisoning."""
from jaxpoison.solvers.lp import LPResult as LPResult
from jaxpoison.solvers.lp import linprog as linprog
