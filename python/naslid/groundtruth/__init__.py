"""Ground truth: benchmark tables of per-architecture accuracies, and the readers of the official
NAS-Bench-201 / NATS-Bench files that build them (``naslid data nb201``)."""
