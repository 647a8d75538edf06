"""Training, evaluation and plotting of operator models."""
