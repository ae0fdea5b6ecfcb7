import numpy as np

from veil.graphs import components


def test_each_node_gets_the_smallest_node_of_its_component():
    a, b = np.array([3, 3, 4]), np.array([0, 5, 2])
    assert components(6, a, b).tolist() == [0, 1, 2, 0, 2, 0]


def test_a_long_chain_in_any_order_is_one_component():
    order = np.random.default_rng(0).permutation(300)
    assert components(300, order[:-1], order[1:]).tolist() == [0] * 300


def test_no_edges():
    assert components(3, [], []).tolist() == [0, 1, 2]
    assert components(0, [], []).tolist() == []
