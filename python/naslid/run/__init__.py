"""One search run, stage by stage: ``pipeline.run_search`` checks every input (``prepare``), then
warms up and splits the supernet along the split tree (``tree``, ``node_training``,
``node_split``), trains the leaves, searches (``final_search``), ranks the leaves against a
benchmark (``leaf_ranking``) and writes the report (``result``, ``report``). The run's state:
``context`` (what every stage reads), ``store`` and ``checkpoint`` (resume after a kill),
``warm_start``, ``distributed`` (torchrun), ``progress``, ``stage_meter`` and ``rss`` (time and
memory per stage)."""
