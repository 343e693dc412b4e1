"""The attacker's side: PCM, preference and label-flip attacks, model-targeted poisoning."""
from jaxpoison.attacks.gradient_poison import GradientAttackResult as GradientAttackResult
from jaxpoison.attacks.gradient_poison import gradient_poisoning_attack as gradient_poisoning_attack
from jaxpoison.attacks.kkt import KKTResult as KKTResult
from jaxpoison.attacks.kkt import kkt_attack as kkt_attack
from jaxpoison.attacks.max_loss import MaxLossPoint as MaxLossPoint
from jaxpoison.attacks.max_loss import max_loss_difference as max_loss_difference
from jaxpoison.attacks.model_targeted import AttackState as AttackState
from jaxpoison.attacks.model_targeted import ModelTargetedResult as ModelTargetedResult
from jaxpoison.attacks.model_targeted import model_targeted_attack as model_targeted_attack
from jaxpoison.attacks.model_targeted import theorem2_lower_bound as theorem2_lower_bound
from jaxpoison.attacks.target_models import TargetModels as TargetModels
from jaxpoison.attacks.target_models import indiscriminate_targets as indiscriminate_targets
from jaxpoison.attacks.target_models import subpopulation_target as subpopulation_target
