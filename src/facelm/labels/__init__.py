"""The label stage: training sets made from other data (photo sets labelled by a teacher, sets
relabelled by it, turned views rendered from a 3D face fit; the near-duplicate guard that keeps the
evaluation sets out of them)."""
