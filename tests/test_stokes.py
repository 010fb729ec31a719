"""Stokes visibilities from correlations: both feed bases, any order, flags and weights."""

import itertools

import numpy as np
import pytest

from spectropol.kernels.stokes import correlations_from_stokes, feed_basis, stokes_from_correlations

RNG = np.random.default_rng(7)
TRUTH = {"I": 2.0 + 0.1j, "Q": 0.3 - 0.2j, "U": -0.4 + 0.05j, "V": 0.05 + 0.01j}


@pytest.mark.parametrize("basis,names", [("linear", ("XX", "XY", "YX", "YY")), ("circular", ("RR", "RL", "LR", "LL"))])
def test_every_correlation_order_gives_the_same_stokes(basis, names):
    # A sky with known Stokes, written in every permutation of the correlation axis, must come
    # back identical: the order in CORR_TYPE is data, not an assumption.
    for order in itertools.permutations(names):
        corr = correlations_from_stokes(TRUTH, order)[None, :]
        vis, weight, labels = stokes_from_correlations(corr, np.zeros((1, 4), bool), np.ones((1, 4)), order)
        assert labels == ("I", "Q", "U", "V")
        assert feed_basis(order) == basis
        np.testing.assert_allclose(vis[0], [TRUTH[s] for s in labels], rtol=1e-6)


def test_linear_feed_textbook_relations():
    # XX = I + Q, YY = I - Q, XY = U + iV, YX = U - iV (IAU / CASA convention).
    corr = correlations_from_stokes({"I": 1.0, "Q": 0.2, "U": 0.3, "V": 0.1}, ("XX", "XY", "YX", "YY"))
    np.testing.assert_allclose(corr, [1.2, 0.3 + 0.1j, 0.3 - 0.1j, 0.8])
    corr = correlations_from_stokes({"I": 1.0, "Q": 0.2, "U": 0.3, "V": 0.1}, ("RR", "RL", "LR", "LL"))
    np.testing.assert_allclose(corr, [1.1, 0.2 + 0.3j, 0.2 - 0.3j, 0.9])


def test_two_correlations_give_i_and_q_only():
    corr = correlations_from_stokes(TRUTH, ("XX", "YY"))[None, :]
    vis, weight, labels = stokes_from_correlations(corr, np.zeros((1, 2), bool), np.ones((1, 2)), ("XX", "YY"))
    assert labels == ("I", "Q")
    np.testing.assert_allclose(vis[0], [TRUTH["I"], TRUTH["Q"]], rtol=1e-6)


def test_weights_are_propagated_inverse_variances():
    # var(I) = (var(XX) + var(YY)) / 4 and likewise for each Stokes.
    weights = np.array([[4.0, 1.0, 2.0, 1.0]])  # XX, XY, YX, YY
    _, w, _ = stokes_from_correlations(np.ones((1, 4), complex), np.zeros((1, 4), bool), weights, ("XX", "XY", "YX",
                                                                                                   "YY"))
    expected_i = 1.0 / ((1 / 4.0 + 1 / 1.0) / 4)
    expected_u = 1.0 / ((1 / 1.0 + 1 / 2.0) / 4)
    np.testing.assert_allclose(w[0], [expected_i, expected_i, expected_u, expected_u], rtol=1e-6)


def test_flags_nonfinite_and_bad_weights_zero_the_stokes_that_use_them():
    corr = np.tile(correlations_from_stokes(TRUTH, ("XX", "XY", "YX", "YY")), (4, 1))
    flags = np.zeros((4, 4), bool)
    weights = np.ones((4, 4))
    flags[0, 0] = True          # XX flagged: I and Q lost, U and V kept
    corr[1, 1] = np.nan         # XY not finite: U and V lost
    weights[2, 3] = 0.0         # YY without weight: I and Q lost
    weights[3, 2] = -1.0        # negative weight on YX: U and V lost
    vis, w, _ = stokes_from_correlations(corr, flags, weights, ("XX", "XY", "YX", "YY"))
    assert (w > 0).tolist() == [[False, False, True, True], [True, True, False, False],
                                [False, False, True, True], [True, True, False, False]]
    assert np.all(np.isfinite(vis))
    assert np.all(vis[w == 0] == 0)


def test_mixed_feeds_are_refused():
    with pytest.raises(ValueError, match="neither all linear"):
        feed_basis(("XX", "RR"))
