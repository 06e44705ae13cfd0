"""The label stage: training sets made from other data (photo sets labelled by a teacher, the
near-duplicate guard that keeps the evaluation sets out of them)."""
