"""Small statistics helpers for success rates."""

from __future__ import annotations

import math


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95 % by default), as fractions in [0, 1].

    Unlike the normal approximation it stays inside [0, 1] and is sensible at 0 or n successes.
    """
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, {n}], got {successes}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # exact bounds at 0 and n successes (floating point would leave 1 - 1e-16, which then plots as a negative bar)
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def mcnemar_exact(wins: int, losses: int) -> float:
    """Two-sided exact McNemar p-value of a paired comparison of two policies on the same episodes.

    Only the discordant episodes count: ``wins`` solved by the first policy alone, ``losses`` by the second alone.
    Under "no difference" each discordant episode is a fair coin, so p is twice the binomial tail of the smaller
    count (capped at 1); 1.0 when there is no discordant episode.
    """
    if wins < 0 or losses < 0:
        raise ValueError(f"wins and losses must be >= 0, got {wins}, {losses}")
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2.0 * tail)
