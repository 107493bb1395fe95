"""Investigation cases: pinned tracks, sightings and searches with notes, and evidence ZIPs."""
