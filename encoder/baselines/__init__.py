"""Non-learned baselines: the floor a learned encoder must beat."""
