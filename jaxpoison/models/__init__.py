"""Trainable models as pure fit / predict / loss functions."""
from jaxpoison.models.linear import LinearFit as LinearFit
from jaxpoison.models.linear import LinearModel as LinearModel
from jaxpoison.models.linear import fit_linear as fit_linear
from jaxpoison.models.linear import linear_losses as linear_losses
from jaxpoison.models.linear import linear_objective as linear_objective
