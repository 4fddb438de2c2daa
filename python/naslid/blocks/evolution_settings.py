"""``EvolutionConfig``: the settings of ``naslid.blocks.evolutionary_search.evolutionary_search``, validated once.

Light on purpose (no torch): ``naslid.config``'s ``search`` section is an ``EvolutionConfig``
(it subclasses it), so these fields are declared here only. ``naslid.blocks.evolutionary_search`` re-exports it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..validation import integer, number


@dataclass
class EvolutionConfig:
    """Evolution (SPOS-style, NAS-LID's settings by default; the algorithm: ``naslid.blocks.evolutionary_search``).

    population     archs per generation (>= 1); generation 0 is ``population`` uniform draws.
    generations    generations after generation 0 (>= 0).
    parents        the best archs seen so far that breed (1 <= parents <= population).
    crossover      crossover children per generation (> 0 needs parents >= 2).
    mutation       mutation children per generation; each decision of a parent is replaced with
                   probability ``mutation_prob`` (in [0, 1]).
    newcomers      fresh uniform draws per generation; random draws fill a generation up to
                   ``population``.
    max_tries      redraws of an invalid or already-seen child before a uniform draw replaces it.
    """

    population: int = 50
    generations: int = 100
    parents: int = 10
    crossover: int = 20
    mutation: int = 20
    mutation_prob: float = 0.1
    newcomers: int = 10
    max_tries: int = 50

    def validate(self, where: str = "EvolutionConfig") -> "EvolutionConfig":
        """Check every setting (without changing any); ValueError ``<where>.<setting>: ...``."""
        integer(f"{where}.population", self.population, 1)
        integer(f"{where}.generations", self.generations, 0)
        integer(f"{where}.parents", self.parents, 1)
        integer(f"{where}.crossover", self.crossover, 0)
        integer(f"{where}.mutation", self.mutation, 0)
        integer(f"{where}.newcomers", self.newcomers, 0)
        integer(f"{where}.max_tries", self.max_tries, 1)
        number(f"{where}.mutation_prob", self.mutation_prob, 0.0, 1.0)
        if self.parents > self.population:
            raise ValueError(f"{where}.parents: parents ({self.parents}) > population ({self.population})")
        if self.crossover > 0 and self.parents < 2:
            raise ValueError(f"{where}.parents: crossover needs parents >= 2 (crossover {self.crossover}, "
                             f"parents {self.parents})")
        return self

    def to_dict(self) -> dict:
        return asdict(self)
