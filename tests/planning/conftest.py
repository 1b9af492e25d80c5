import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # lets tests import the dense reference `naive` and `road_grid`

from road_grid import grid_network  # noqa: E402


@pytest.fixture(scope="session")
def small_grid():
    """A deterministic RoadNetwork of 4 x 5 jittered intersections, 2 road classes (one primary row and column,
    2 lanes, 50 km/h; residential elsewhere), two-way streets: 20 nodes, 62 directed edges (states)."""
    return grid_network(4, 5)
