"""naslid: the NAS-LID search driver (search spaces, splitting, training, search, evaluation)."""
__version__ = "0.1.0"
