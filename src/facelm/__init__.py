"""facelm: light-weight 68-point facial landmark predictors, trained and shipped by a Snakemake pipeline."""

__version__ = "0.1.0"
