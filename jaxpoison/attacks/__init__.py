"""The attacker's side: PCM, preference and label-flip attacks, model-targeted poisoning."""
from jaxpoison.attacks.label_flip import LabelFlipResult as LabelFlipResult
from jaxpoison.attacks.label_flip import alfa as alfa
from jaxpoison.attacks.label_flip import alfa_tilt as alfa_tilt
from jaxpoison.attacks.label_flip import flip_budget as flip_budget
from jaxpoison.attacks.label_flip import greedy_lfa as greedy_lfa
from jaxpoison.attacks.label_flip import random_label_flip as random_label_flip
from jaxpoison.attacks.label_flip import topk_sv_flip as topk_sv_flip
