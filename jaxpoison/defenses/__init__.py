"""The defender's side: FLORAL, label-noise baselines, DPA / Finite Aggregation and certificates."""
from jaxpoison.defenses.aggregation import Ensemble as Ensemble
from jaxpoison.defenses.aggregation import ensemble_predict as ensemble_predict
from jaxpoison.defenses.aggregation import train_ensemble as train_ensemble
from jaxpoison.defenses.baselines import BaselineResult as BaselineResult
from jaxpoison.defenses.baselines import curie as curie
from jaxpoison.defenses.baselines import k_lid_svm as k_lid_svm
from jaxpoison.defenses.baselines import k_lid_weights as k_lid_weights
from jaxpoison.defenses.baselines import ln_svm as ln_svm
from jaxpoison.defenses.baselines import ls_svm as ls_svm
from jaxpoison.defenses.baselines import svm_baseline as svm_baseline
from jaxpoison.defenses.certify import ABSTAIN as ABSTAIN
from jaxpoison.defenses.certify import Certificate as Certificate
from jaxpoison.defenses.certify import certified_accuracy as certified_accuracy
from jaxpoison.defenses.certify import dpa_certify as dpa_certify
from jaxpoison.defenses.certify import fa_certify as fa_certify
from jaxpoison.defenses.certify import knn_certify as knn_certify
from jaxpoison.defenses.certify import median_certified_radius as median_certified_radius
from jaxpoison.defenses.certify import rnn_certify as rnn_certify
from jaxpoison.defenses.certify import vote_counts as vote_counts
from jaxpoison.defenses.floral import FloralGame as FloralGame
from jaxpoison.defenses.floral import FloralHistory as FloralHistory
from jaxpoison.defenses.floral import FloralMultiResult as FloralMultiResult
from jaxpoison.defenses.floral import FloralResult as FloralResult
from jaxpoison.defenses.floral import OneVsRestKernelSVM as OneVsRestKernelSVM
from jaxpoison.defenses.floral import Trajectory as Trajectory
from jaxpoison.defenses.floral import curve_best_last as curve_best_last
from jaxpoison.defenses.floral import floral as floral
from jaxpoison.defenses.floral import floral_attack as floral_attack
from jaxpoison.defenses.floral import floral_game as floral_game
from jaxpoison.defenses.floral import floral_multiclass as floral_multiclass
from jaxpoison.defenses.floral import floral_validation_loss as floral_validation_loss
from jaxpoison.defenses.floral_smooth import SmoothFloralResult as SmoothFloralResult
from jaxpoison.defenses.floral_smooth import smooth_floral as smooth_floral
from jaxpoison.defenses.floral_smooth import (
    smooth_floral_validation_loss as smooth_floral_validation_loss,
)
from jaxpoison.defenses.nn_baselines import MLPResult as MLPResult
from jaxpoison.defenses.nn_baselines import mlp_baseline as mlp_baseline
from jaxpoison.defenses.nn_baselines import mlp_pgd_baseline as mlp_pgd_baseline
from jaxpoison.defenses.nn_baselines import pgd_perturbation as pgd_perturbation
from jaxpoison.defenses.partition import EmptyPartWarning as EmptyPartWarning
from jaxpoison.defenses.partition import Partition as Partition
from jaxpoison.defenses.partition import bytes_hash as bytes_hash
from jaxpoison.defenses.partition import dpa_partition as dpa_partition
from jaxpoison.defenses.partition import fa_partition as fa_partition
from jaxpoison.defenses.partition import fa_shifts as fa_shifts
from jaxpoison.defenses.partition import pixel_sum_hash as pixel_sum_hash
