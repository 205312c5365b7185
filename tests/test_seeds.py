import numpy as np
import pytest

import glmm_binomial as g
from glmm_binomial.numerics.seeds import generator, seed_sequence


def test_an_integer_seed_gives_numpys_own_streams():
    assert seed_sequence(5).entropy == 5
    np.testing.assert_array_equal(
        [c.generate_state(2) for c in seed_sequence(5).spawn(3)],
        [c.generate_state(2) for c in np.random.SeedSequence(5).spawn(3)],
    )
    np.testing.assert_array_equal(generator(5).random(4), np.random.default_rng(5).random(4))


def test_a_seed_sequence_is_copied_in_its_state_and_left_as_it_was():
    given = np.random.SeedSequence(7, spawn_key=(2,))
    given.spawn(1)
    copied = seed_sequence(given)
    assert copied is not given
    np.testing.assert_array_equal(
        [c.generate_state(2) for c in copied.spawn(3)],
        [c.generate_state(2) for c in given.spawn(3)],
    )
    # Spawning from the copy left the caller's sequence where it was (its own spawn above
    # advanced it to 4 children).
    assert given.n_children_spawned == 4


def test_the_same_seed_sequence_twice_gives_the_same_simulations():
    # Found by bench/fuzz_workflow.py: the bootstrap spawned from the caller's SeedSequence,
    # so that a second call with it gave other replicates.
    data = g.datasets.load("cbpp")
    fitted = g.fit("cbind(incidence, size - incidence) ~ period + (1 | herd)", data)
    seed = np.random.SeedSequence(11)
    first = g.bootstrap(fitted, n_boot=3, seed=seed).replicates
    again = g.bootstrap(fitted, n_boot=3, seed=seed).replicates
    assert first.equals(again)
    assert seed.n_children_spawned == 0
    np.testing.assert_array_equal(fitted.simulate(2, seed=seed), fitted.simulate(2, seed=seed))


def test_a_generator_is_a_seed_by_its_state():
    first = seed_sequence(np.random.default_rng(3)).entropy
    assert first == seed_sequence(np.random.default_rng(3)).entropy
    stream = np.random.default_rng(3)
    assert generator(stream) is stream


@pytest.mark.parametrize("bad", ["x", -1, 1.5, True, [1, -2], b"7"])
def test_what_is_no_seed_is_refused_by_name(bad):
    with pytest.raises(ValueError, match=r"^seed must be None, a non-negative integer"):
        seed_sequence(bad)
    with pytest.raises(ValueError, match=r"^rng must be"):
        generator(bad, name="rng")


def test_the_simulations_name_a_bad_seed():
    data = g.datasets.load("cbpp")
    fitted = g.fit("cbind(incidence, size - incidence) ~ period + (1 | herd)", data)
    with pytest.raises(ValueError, match="seed must be"):
        g.power_sim(fitted, test="period", nsim=2, seed="x")
    with pytest.raises(ValueError, match="seed must be"):
        fitted.simulate(2, seed=-1)
