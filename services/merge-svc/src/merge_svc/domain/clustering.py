"""Clusters from scored pairs: the connected components of the pairs at or above the threshold.

The same as splink's `cluster_pairwise_predictions_at_threshold` (connected components), done with
union-find in Python because both the scan and the incremental path hold their pairs in memory already,
and one piece of code keeps their clusters identical.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def connected_components(pairs: Iterable[tuple[int, int, float, Any]]) -> list[tuple[list[int], float]]:
    """(sorted member ids, score) per cluster; a cluster's score is its weakest pair."""
    parent: dict[int, int] = {}
    weakest: dict[int, float] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    edges = list(pairs)
    for left, right, _score, _ in edges:
        a, b = find(left), find(right)
        if a != b:
            parent[max(a, b)] = min(a, b)
    for left, _right, score, _ in edges:
        root = find(left)
        weakest[root] = min(weakest.get(root, 1.0), score)
    groups: dict[int, list[int]] = {}
    for node in list(parent):
        groups.setdefault(find(node), []).append(node)
    return sorted(((sorted(members), weakest[root]) for root, members in groups.items() if len(members) > 1),
                  key=lambda c: c[0][0])
