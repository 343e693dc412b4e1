"""The attacker's side: PCM, preference and label-flip attacks, model-targeted poisoning."""
