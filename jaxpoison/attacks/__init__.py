"""The attacker's side: PCM, preference and label-flip attacks, model-targeted poisoning."""
from jaxpoison.attacks.discretize import Discretized as Discretized
from jaxpoison.attacks.discretize import discretize as discretize
from jaxpoison.attacks.gradient_poison import GradientAttackResult as GradientAttackResult
from jaxpoison.attacks.gradient_poison import gradient_poisoning_attack as gradient_poisoning_attack
from jaxpoison.attacks.kkt import KKTResult as KKTResult
from jaxpoison.attacks.kkt import kkt_attack as kkt_attack
from jaxpoison.attacks.label_flip import LabelFlipResult as LabelFlipResult
from jaxpoison.attacks.label_flip import alfa as alfa
from jaxpoison.attacks.label_flip import alfa_tilt as alfa_tilt
from jaxpoison.attacks.label_flip import flip_budget as flip_budget
from jaxpoison.attacks.label_flip import greedy_lfa as greedy_lfa
from jaxpoison.attacks.label_flip import random_label_flip as random_label_flip
from jaxpoison.attacks.label_flip import topk_sv_flip as topk_sv_flip
from jaxpoison.attacks.max_loss import DiscreteFeatures as DiscreteFeatures
from jaxpoison.attacks.max_loss import LogisticSearch as LogisticSearch
from jaxpoison.attacks.max_loss import MaxLossPoint as MaxLossPoint
from jaxpoison.attacks.max_loss import check_discrete as check_discrete
from jaxpoison.attacks.max_loss import check_search as check_search
from jaxpoison.attacks.max_loss import max_loss_difference as max_loss_difference
from jaxpoison.attacks.model_targeted import AttackState as AttackState
from jaxpoison.attacks.model_targeted import InducedBound as InducedBound
from jaxpoison.attacks.model_targeted import ModelTargetedResult as ModelTargetedResult
from jaxpoison.attacks.model_targeted import corollary1_lower_bound as corollary1_lower_bound
from jaxpoison.attacks.model_targeted import induced_lower_bound as induced_lower_bound
from jaxpoison.attacks.model_targeted import model_targeted_attack as model_targeted_attack
from jaxpoison.attacks.model_targeted import theorem2_lower_bound as theorem2_lower_bound
from jaxpoison.attacks.pcm import PCMResult as PCMResult
from jaxpoison.attacks.pcm import count_flips as count_flips
from jaxpoison.attacks.pcm import flip_tolerance as flip_tolerance
from jaxpoison.attacks.pcm import pcm as pcm
from jaxpoison.attacks.pcm_bounds import PCMBound as PCMBound
from jaxpoison.attacks.pcm_bounds import pcm_lower_bound as pcm_lower_bound
from jaxpoison.attacks.pcm_bounds import pcm_upper_bound as pcm_upper_bound
from jaxpoison.attacks.preference import PreferenceAttack as PreferenceAttack
from jaxpoison.attacks.preference import random_flip as random_flip
from jaxpoison.attacks.preference import rlhf_poison as rlhf_poison
from jaxpoison.attacks.smooth_alfa import SmoothFlipResult as SmoothFlipResult
from jaxpoison.attacks.smooth_alfa import smooth_alfa as smooth_alfa
from jaxpoison.attacks.smooth_alfa import smooth_alfa_tilt as smooth_alfa_tilt
from jaxpoison.attacks.smooth_alfa import (
    smooth_alfa_tilt_validation_loss as smooth_alfa_tilt_validation_loss,
)
from jaxpoison.attacks.smooth_alfa import (
    smooth_alfa_validation_loss as smooth_alfa_validation_loss,
)
from jaxpoison.attacks.smooth_greedy_lfa import smooth_greedy_lfa as smooth_greedy_lfa
from jaxpoison.attacks.smooth_greedy_lfa import (
    smooth_greedy_lfa_validation_loss as smooth_greedy_lfa_validation_loss,
)
from jaxpoison.attacks.smooth_label_flip import SmoothLabelFlipResult as SmoothLabelFlipResult
from jaxpoison.attacks.smooth_label_flip import (
    check_smooth_flip_inputs as check_smooth_flip_inputs,
)
from jaxpoison.attacks.smooth_label_flip import check_validation_data as check_validation_data
from jaxpoison.attacks.smooth_label_flip import (
    smooth_label_flip_validation_loss as smooth_label_flip_validation_loss,
)
from jaxpoison.attacks.smooth_label_flip import smooth_topk_sv_flip as smooth_topk_sv_flip
from jaxpoison.attacks.target_models import TargetModels as TargetModels
from jaxpoison.attacks.target_models import indiscriminate_targets as indiscriminate_targets
from jaxpoison.attacks.target_models import subpopulation_target as subpopulation_target
