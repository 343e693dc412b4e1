"""The defender's side: FLORAL, label-noise baselines, DPA / Finite Aggregation and certificates."""
from jaxpoison.defenses.baselines import BaselineResult as BaselineResult
from jaxpoison.defenses.baselines import curie as curie
from jaxpoison.defenses.baselines import ln_svm as ln_svm
from jaxpoison.defenses.baselines import ls_svm as ls_svm
from jaxpoison.defenses.baselines import svm_baseline as svm_baseline
from jaxpoison.defenses.floral import FloralResult as FloralResult
from jaxpoison.defenses.floral import floral as floral
from jaxpoison.defenses.floral import floral_multiclass as floral_multiclass
from jaxpoison.defenses.floral import floral_validation_loss as floral_validation_loss
