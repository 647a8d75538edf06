"""Neural-operator models, training, evaluation, checkpoints and the ``pdeop`` command line."""
