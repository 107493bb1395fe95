"""Offline evaluation of platform stages against synthetic ground truth (tracking: HOTA,
IDF1 and MOTA with TrackEval)."""
