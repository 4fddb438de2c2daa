"""The version of naslid (the ``naslid_ext`` ops and the ``naslid`` driver, one distribution): the
one place it is written. ``setup.py`` reads it from this file (and compiles it into the extension,
``naslid_ext.build_info()["ext_version"]``); ``naslid.__version__`` imports it."""
__version__ = "0.1.0"
