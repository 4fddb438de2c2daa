"""Research studies behind the results in ``results/`` (used by the scripts in the top-level ``studies/``
folder and ``naslid bench-memory``, never by a search): the paired criteria study's report
(``criteria_study``), stand-alone ground truth at the search's own setting (``standalone``,
files in ``truth_files``) and the split step's peak memory (``peak_memory``)."""
