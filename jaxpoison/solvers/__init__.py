"""Generic numerics (LP, QP / SVM-dual, implicit differentiation); knows nothing about poisoning."""
from jaxpoison.solvers.box_hyperplane import project_box_hyperplane as project_box_hyperplane
from jaxpoison.solvers.implicit import attach_implicit_grad as attach_implicit_grad
from jaxpoison.solvers.lp import LPResult as LPResult
from jaxpoison.solvers.lp import linprog as linprog
from jaxpoison.solvers.smoothing import NoDerivativeError as NoDerivativeError
from jaxpoison.solvers.smoothing import no_derivative as no_derivative
from jaxpoison.solvers.smoothing import perturbed as perturbed
from jaxpoison.solvers.smoothing import soft_topk as soft_topk
from jaxpoison.solvers.smoothing import topk_mask as topk_mask
from jaxpoison.solvers.svm_dual import PGD as PGD
from jaxpoison.solvers.svm_dual import SMO as SMO
from jaxpoison.solvers.svm_dual import SVMDualResult as SVMDualResult
from jaxpoison.solvers.svm_dual import max_eigenvalue as max_eigenvalue
from jaxpoison.solvers.svm_dual import solve_svm_dual as solve_svm_dual
from jaxpoison.solvers.svm_dual import svm_dual_pgd as svm_dual_pgd
from jaxpoison.solvers.svm_dual import svm_dual_smo as svm_dual_smo
from jaxpoison.solvers.svm_dual import svm_dual_smo_kernel as svm_dual_smo_kernel
