"""Generic numerics (LP, QP / SVM-dual, implicit differentiation); knows nothing about poisoning."""
from jaxpoison.solvers.box_hyperplane import project_box_hyperplane as project_box_hyperplane
from jaxpoison.solvers.distances import l1_distances as l1_distances
from jaxpoison.solvers.distances import squared_distances as squared_distances
from jaxpoison.solvers.implicit import attach_implicit_grad as attach_implicit_grad
from jaxpoison.solvers.lp import LPResult as LPResult
from jaxpoison.solvers.lp import linprog as linprog
from jaxpoison.solvers.svm_dual import PGD as PGD
from jaxpoison.solvers.svm_dual import SMO as SMO
from jaxpoison.solvers.svm_dual import SVMDualResult as SVMDualResult
from jaxpoison.solvers.svm_dual import max_eigenvalue as max_eigenvalue
from jaxpoison.solvers.svm_dual import solve_svm_dual as solve_svm_dual
from jaxpoison.solvers.svm_dual import svm_dual_pgd as svm_dual_pgd
from jaxpoison.solvers.svm_dual import svm_dual_smo as svm_dual_smo
from jaxpoison.solvers.svm_dual import svm_dual_smo_kernel as svm_dual_smo_kernel
