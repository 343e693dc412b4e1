"""The attacker's side: PCM, preference and label-flip attacks, model-targeted poisoning."""
from jaxpoison.attacks.discretize import Discretized as Discretized
from jaxpoison.attacks.discretize import discretize as discretize
from jaxpoison.attacks.pcm import PCMResult as PCMResult
from jaxpoison.attacks.pcm import pcm as pcm
from jaxpoison.attacks.pcm_bounds import pcm_lower_bound as pcm_lower_bound
from jaxpoison.attacks.pcm_bounds import pcm_upper_bound as pcm_upper_bound
from jaxpoison.attacks.preference import PreferenceAttack as PreferenceAttack
from jaxpoison.attacks.preference import random_flip as random_flip
from jaxpoison.attacks.preference import rlhf_poison as rlhf_poison
