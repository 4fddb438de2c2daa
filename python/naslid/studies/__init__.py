"""Research studies behind the results in ``results/`` (used by ``benchmarks/`` scripts and
``naslid bench-memory``, never by a search): the paired criteria study's report
(``criteria_study``), stand-alone ground truth at the search's own setting (``standalone``,
files in ``truth_files``) and the split step's peak memory (``peak_memory``)."""
