"""Trainable models as pure fit / predict / loss functions."""
from jaxpoison.models.reward import RewardResult as RewardResult
from jaxpoison.models.reward import bradley_terry_loss as bradley_terry_loss
from jaxpoison.models.reward import fit_bradley_terry as fit_bradley_terry
