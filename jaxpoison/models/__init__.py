"""Trainable models as pure fit / predict / loss functions."""
from jaxpoison.models.kernel_svm import KernelSVM as KernelSVM
from jaxpoison.models.kernel_svm import fit_kernel_svm as fit_kernel_svm
from jaxpoison.models.kernel_svm import fit_kernel_svm_precomputed as fit_kernel_svm_precomputed
from jaxpoison.models.kernels import kernel_matrix as kernel_matrix
from jaxpoison.models.learners import MLP as MLP
from jaxpoison.models.learners import KNearestNeighbors as KNearestNeighbors
from jaxpoison.models.learners import RadiusNearestNeighbors as RadiusNearestNeighbors
from jaxpoison.models.learners import SmallCNN as SmallCNN
from jaxpoison.models.learners import SoftmaxRegression as SoftmaxRegression
from jaxpoison.models.learners import fit_part as fit_part
from jaxpoison.models.learners import fit_parts as fit_parts
from jaxpoison.models.linear import LinearFit as LinearFit
from jaxpoison.models.linear import LinearModel as LinearModel
from jaxpoison.models.linear import fit_linear as fit_linear
from jaxpoison.models.linear import linear_losses as linear_losses
from jaxpoison.models.linear import linear_objective as linear_objective
