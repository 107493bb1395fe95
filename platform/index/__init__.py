"""Vector index: Qdrant collections per encoder version behind a live alias."""
