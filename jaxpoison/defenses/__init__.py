"""The defender's side: FLORAL, label-noise baselines, DPA / Finite Aggregation and certificates."""
from jaxpoison.defenses.certify import Certificate as Certificate
from jaxpoison.defenses.certify import certified_accuracy as certified_accuracy
from jaxpoison.defenses.certify import dpa_certify as dpa_certify
from jaxpoison.defenses.certify import fa_certify as fa_certify
from jaxpoison.defenses.certify import knn_certify as knn_certify
from jaxpoison.defenses.certify import median_certified_radius as median_certified_radius
from jaxpoison.defenses.certify import rnn_certify as rnn_certify
from jaxpoison.defenses.certify import vote_counts as vote_counts
from jaxpoison.defenses.partition import EmptyPartWarning as EmptyPartWarning
from jaxpoison.defenses.partition import Partition as Partition
from jaxpoison.defenses.partition import bytes_hash as bytes_hash
from jaxpoison.defenses.partition import dpa_partition as dpa_partition
from jaxpoison.defenses.partition import fa_partition as fa_partition
from jaxpoison.defenses.partition import fa_shifts as fa_shifts
from jaxpoison.defenses.partition import pixel_sum_hash as pixel_sum_hash
