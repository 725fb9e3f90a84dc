"""What a reader can work out from published figures: exact linear algebra over the underlying counts.

Every published figure is an equation "the sum of these unknowns is v". The reader can determine a
combination of unknowns exactly when it lies in the row space of those equations; its value is then the
same combination of the figures. Elimination is modulo a 61-bit prime (exact: no rounding; a combination
found determined mod p is determined over the rationals except with probability about 1/p per test).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

P = (1 << 61) - 1


class Reader:
    """The published equations in reduced row echelon form, built one figure at a time."""

    def __init__(self) -> None:
        self.rows: dict[Hashable, tuple[dict[Hashable, int], int]] = {}  # pivot -> (coefficients, value)
        self.figures = 0

    def learn(self, unknowns: Iterable[Hashable], value: int) -> None:
        """One published figure: the sum of ``unknowns`` is ``value``."""
        self.figures += 1
        row, acc = self._reduce({u: 1 for u in unknowns}, value)
        if not row:
            if acc % P:
                raise AssertionError("published figures contradict each other")
            return
        pivot = next(iter(row))
        inv = pow(row[pivot], P - 2, P)
        row = {u: c * inv % P for u, c in row.items()}
        acc = acc * inv % P
        for key, (other, val) in list(self.rows.items()):
            factor = other.get(pivot)
            if factor:
                merged = dict(other)
                for u, c in row.items():
                    v = (merged.get(u, 0) - factor * c) % P
                    if v:
                        merged[u] = v
                    else:
                        merged.pop(u, None)
                self.rows[key] = (merged, (val - factor * acc) % P)
        self.rows[pivot] = (row, acc)

    def _reduce(self, row: dict[Hashable, int], value: int) -> tuple[dict[Hashable, int], int]:
        row = {u: c % P for u, c in row.items() if c % P}
        acc = value % P
        for pivot in [u for u in row if u in self.rows]:
            factor = row.get(pivot)
            if not factor:
                continue
            other, val = self.rows[pivot]
            for u, c in other.items():
                v = (row.get(u, 0) - factor * c) % P
                if v:
                    row[u] = v
                else:
                    row.pop(u, None)
            acc = (acc - factor * val) % P
        return row, acc

    def determined(self, unknowns: Iterable[Hashable]) -> int | None:
        """The value of the sum of ``unknowns`` if the figures pin it down, else None."""
        row, acc = self._reduce({u: 1 for u in unknowns}, 0)
        if row:
            return None
        value = (-acc) % P
        return value if value < P // 2 else value - P
