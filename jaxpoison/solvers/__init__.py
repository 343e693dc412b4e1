"""Generic numerics (LP, QP / SVM-dual, implicit differentiation); knows nothing about poisoning."""
