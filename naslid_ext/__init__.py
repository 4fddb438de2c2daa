"""naslid_ext: exact, fast k-NN and MLE local intrinsic dimension (LID) ops for PyTorch.

(API under construction: see README.)
"""
__version__ = "0.1.0"
