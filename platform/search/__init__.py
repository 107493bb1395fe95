"""Cross-modal search and review services."""
