"""Generic numerics (LP, QP / SVM-dual, implicit differentiation); knows nothing about poisoning."""
from jaxpoison.solvers.box_hyperplane import project_box_hyperplane as project_box_hyperplane
from jaxpoison.solvers.implicit import attach_implicit_grad as attach_implicit_grad
from jaxpoison.solvers.lp import IPM as IPM
from jaxpoison.solvers.lp import LP_METHODS as LP_METHODS
from jaxpoison.solvers.lp import PDHG as PDHG
from jaxpoison.solvers.lp import DenseOperator as DenseOperator
from jaxpoison.solvers.lp import LPResult as LPResult
from jaxpoison.solvers.lp import PairOperator as PairOperator
from jaxpoison.solvers.lp import linprog as linprog
from jaxpoison.solvers.lp import resolve_method as resolve_method
from jaxpoison.solvers.lp import solve_lp as solve_lp
from jaxpoison.solvers.svm_dual import SVMDualResult as SVMDualResult
from jaxpoison.solvers.svm_dual import svm_dual_pgd as svm_dual_pgd
from jaxpoison.solvers.svm_dual import svm_dual_smo as svm_dual_smo
from jaxpoison.solvers.svm_dual import svm_dual_smo_kernel as svm_dual_smo_kernel
