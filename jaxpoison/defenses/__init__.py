"""The defender's side: FLORAL, label-noise baselines, DPA / Finite Aggregation and certificates."""
