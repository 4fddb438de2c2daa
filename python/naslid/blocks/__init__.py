"""The building blocks of a search: supernet training (``supernet_training``), accuracy and loss
of a cell with inherited weights (``inherited_eval``), the evolutionary and random search over
the leaves' masks (``evolutionary_search``, settings in ``evolution_settings``). Training-free
scores are in ``naslid.scores``."""
