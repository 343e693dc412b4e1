"""Trainable models as pure fit / predict / loss functions."""
from jaxpoison.models.kernel_svm import KernelSVM as KernelSVM
from jaxpoison.models.kernel_svm import fit_kernel_svm as fit_kernel_svm
from jaxpoison.models.kernel_svm import fit_kernel_svm_precomputed as fit_kernel_svm_precomputed
from jaxpoison.models.kernels import kernel_matrix as kernel_matrix
