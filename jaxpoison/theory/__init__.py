"""Closed-form bounds and theory quantities (lethal dose, Gaussian separation, ...)."""
from jaxpoison.theory.lethal_dose import dpa_approx_radius as dpa_approx_radius
from jaxpoison.theory.lethal_dose import gaussian_delta as gaussian_delta
from jaxpoison.theory.lethal_dose import tolerable_poison as tolerable_poison
