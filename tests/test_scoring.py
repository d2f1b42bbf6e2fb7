"""Permutation search, SI-SDR, assignment modes and mixture-level decisions."""

import itertools

import numpy as np
import pytest

from amongus.scoring import (
    Assignment,
    assign_streams,
    best_permutation,
    describe_assignment,
    inverse_permutation,
    label_cost,
    mixture_decision,
    pairwise_cost,
    reorder,
    si_sdr,
    si_sdr_improvement,
)


def brute_force_minimum(cost: np.ndarray) -> tuple[float, tuple[int, ...]]:
    """Least total cost and the first permutation (lexicographic) reaching it."""
    n = cost.shape[0]
    totals = {p: sum(cost[i, p[i]] for i in range(n)) for p in itertools.permutations(range(n))}
    best_total = min(totals.values())
    first = next(p for p in itertools.permutations(range(n)) if totals[p] == best_total)
    return best_total, first


@pytest.mark.parametrize("n_sources", [2, 3, 4, 5])
def test_best_permutation_matches_brute_force_on_random_costs(n_sources):
    rng = np.random.default_rng(n_sources)
    for _ in range(40):
        cost = rng.normal(size=(n_sources, n_sources))
        perm = best_permutation(cost)
        best_total, first = brute_force_minimum(cost)
        assert sorted(perm) == list(range(n_sources))
        assert sum(cost[i, perm[i]] for i in range(n_sources)) == pytest.approx(best_total)
        if n_sources <= 3:  # exhaustive search: the very permutation brute force finds first
            assert perm == first


@pytest.mark.parametrize("n_sources", [2, 3, 4, 5])
def test_best_permutation_with_ties_reaches_the_minimum(n_sources):
    rng = np.random.default_rng(100 + n_sources)
    for _ in range(40):
        cost = rng.integers(0, 3, size=(n_sources, n_sources)).astype(float)  # many ties
        perm = best_permutation(cost)
        best_total, first = brute_force_minimum(cost)
        assert sum(cost[i, perm[i]] for i in range(n_sources)) == best_total
        if n_sources <= 3:
            assert perm == first


def test_best_permutation_all_equal_costs_keeps_identity():
    assert best_permutation(np.ones((3, 3))) == (0, 1, 2)
    assert best_permutation(np.zeros((2, 2))) == (0, 1)


def test_best_permutation_known_answers_and_torch_input():
    import torch

    assert best_permutation([[5.0, 1.0], [0.0, 4.0]]) == (1, 0)
    cost = torch.tensor([[9.0, 9.0, 0.0], [0.0, 9.0, 9.0], [9.0, 0.0, 9.0]])
    assert best_permutation(cost) == (2, 0, 1)


@pytest.mark.parametrize(
    "bad,message",
    [
        (np.zeros((2, 3)), "square"),
        (np.zeros(3), "square"),
        (np.array([[0.0, np.nan], [1.0, 0.0]]), "NaN"),
        (np.zeros((0, 0)), "empty"),
    ],
)
def test_best_permutation_rejects_bad_cost(bad, message):
    with pytest.raises(ValueError, match=message):
        best_permutation(bad)


def test_inverse_permutation_and_reorder():
    perm = (2, 0, 1)
    assert inverse_permutation(perm) == (1, 2, 0)
    streams = np.array([[2.0], [0.0], [1.0]])  # stream i carries the value of its reference
    assert reorder(streams, perm)[:, 0].tolist() == [0.0, 1.0, 2.0]
    assert reorder(["c", "a", "b"], perm) == ["a", "b", "c"]


def test_si_sdr_properties():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=4000)
    noise = rng.normal(size=4000)
    estimate = reference + 0.1 * noise
    value = float(si_sdr(estimate, reference))
    # scale invariance and invariance to a DC offset (zero-mean)
    assert float(si_sdr(3.0 * estimate + 0.5, reference)) == pytest.approx(value, abs=1e-6)
    # exact answer for an orthogonalised noise: 10 log10(|r|^2 / |n|^2)
    ref0 = reference - reference.mean()
    orth = noise - noise.mean()
    orth -= orth @ ref0 / (ref0 @ ref0) * ref0
    expected = 10 * np.log10((ref0 @ ref0) / (0.01 * orth @ orth))
    assert float(si_sdr(ref0 + 0.1 * orth, ref0)) == pytest.approx(expected, abs=1e-4)
    # more noise -> lower SI-SDR; perfect estimate -> very high
    assert float(si_sdr(reference + noise, reference)) < value
    assert float(si_sdr(reference, reference)) > 60


def test_si_sdr_is_finite_for_silent_signals_and_batches():
    rng = np.random.default_rng(1)
    estimate = rng.normal(size=(2, 3, 800))
    silent = np.zeros(800)
    assert np.isfinite(si_sdr(estimate[0, 0], silent))
    assert float(si_sdr(estimate[0, 0], silent)) < -50
    assert float(si_sdr(silent, silent)) == pytest.approx(0.0)
    batched = si_sdr(estimate, estimate[:, ::-1])
    assert batched.shape == (2, 3)
    assert batched[1, 2] == pytest.approx(float(si_sdr(estimate[1, 2], estimate[1, 0])))
    with pytest.raises(ValueError, match="shapes differ"):
        si_sdr(np.zeros(10), np.zeros(11))


def test_pairwise_cost_is_negative_si_sdr_and_finds_the_swap():
    rng = np.random.default_rng(2)
    references = rng.normal(size=(3, 2000))
    streams = references[[2, 0, 1]] + 0.05 * rng.normal(size=(3, 2000))
    cost = pairwise_cost(streams, references)
    assert cost.shape == (3, 3)
    assert cost[1, 2] == pytest.approx(-float(si_sdr(streams[1], references[2])))
    assignment = assign_streams(streams, references=references, mode="signal")
    assert assignment.permutation == (2, 0, 1)
    assert np.allclose(assignment.reorder(streams), references, atol=0.3)
    assert assignment.si_sdr.shape == (3,) and np.all(assignment.si_sdr > 20)
    assert not assignment.optimistic


def test_labels_and_signal_assignment_differ_on_a_constructed_case():
    """A separator swaps the speakers; the classifier is wrong on both streams.

    Stream 0 carries reference 1 (spoof) and stream 1 reference 0 (bonafide). The classifier calls
    stream 0 bonafide and stream 1 spoof. Signal assignment pairs the audio correctly and counts
    two errors; the study's label assignment picks the order that matches the labels, reporting
    zero errors -- the optimism the report warns about.
    """
    rng = np.random.default_rng(3)
    references = rng.normal(size=(2, 1600))
    streams = references[[1, 0]] + 0.01 * rng.normal(size=(2, 1600))
    true_labels = ["bonafide", "spoof"]
    probability = np.array([0.2, 0.9])
    signal = assign_streams(
        streams,
        references=references,
        labels=true_labels,
        stream_spoof_probability=probability,
        mode="signal",
    )
    labels = assign_streams(
        streams,
        references=references,
        labels=true_labels,
        stream_spoof_probability=probability,
        mode="labels",
    )
    assert signal.permutation == (1, 0)
    assert labels.permutation == (0, 1)
    predicted = ["spoof" if p >= 0.5 else "bonafide" for p in probability]
    signal_errors = sum(
        predicted[i] != true_labels[signal.permutation[i]] for i in range(len(predicted))
    )
    label_errors = sum(
        predicted[i] != true_labels[labels.permutation[i]] for i in range(len(predicted))
    )
    assert (signal_errors, label_errors) == (2, 0)
    assert labels.optimistic
    assert "optimistic" in describe_assignment("labels")
    # SI-SDR is still reported per reference: poor for the label-chosen (wrong) pairing
    assert np.all(labels.si_sdr < 0) and np.all(signal.si_sdr > 20)


def test_label_cost_breaks_ties_on_probability_distance():
    # both streams predicted spoof, one reference spoof: the more confident stream takes it
    cost = label_cost([0.6, 0.95], ["bonafide", "spoof"])
    assert best_permutation(cost) == (0, 1)
    cost = label_cost([0.95, 0.6], ["bonafide", "spoof"])
    assert best_permutation(cost) == (1, 0)


def test_assign_streams_modes_and_errors():
    none = assign_streams(np.zeros((2, 10)), mode=None)
    assert isinstance(none, Assignment) and none.permutation is None
    with pytest.raises(ValueError, match="no assignment"):
        none.reorder([1, 2])
    assert assign_streams(mode="none").mode is None
    with pytest.raises(ValueError, match="needs both streams and references"):
        assign_streams(np.zeros((2, 10)), mode="signal")
    with pytest.raises(ValueError, match="needs the true labels"):
        assign_streams(mode="labels", labels=["spoof", "bonafide"])
    with pytest.raises(ValueError, match="unknown assignment mode"):
        assign_streams(mode="oracle")
    with pytest.raises(ValueError, match="3 streams but 2 reference"):
        assign_streams(np.ones((3, 10)), references=np.ones((2, 10)))


def test_si_sdr_improvement_of_a_perfect_separation_is_positive():
    rng = np.random.default_rng(4)
    references = rng.normal(size=(2, 4000))
    mixture = references.sum(0)
    improvement = si_sdr_improvement(
        references + 1e-3 * rng.normal(size=(2, 4000)), references, mixture
    )
    assert improvement > 40
    # returning the mixture itself as both streams improves nothing
    assert si_sdr_improvement(np.stack([mixture, mixture]), references, mixture) == pytest.approx(
        0.0, abs=1e-9
    )


@pytest.mark.parametrize(
    "probability,threshold,composition,n_spoofed",
    [
        ([0.9, 0.1], 0.5, "SB", 1),
        ([0.9, 0.7], 0.5, "SS", 2),
        ([0.9, 0.7], 0.8, "SB", 1),
        ([0.2, 0.1, 0.6], 0.5, "SBB", 1),
        ([0.5, 0.49], 0.5, "SB", 1),  # the threshold itself counts as spoof
    ],
)
def test_mixture_decision(probability, threshold, composition, n_spoofed):
    decision = mixture_decision(probability, spoof_threshold=threshold)
    assert decision.composition == composition
    assert decision.n_spoofed == n_spoofed
    assert decision.spoof_present_score == max(probability)
    assert decision.bonafide_score == -max(probability)
    assert decision.spoof_present == (n_spoofed > 0)


def test_mixture_decision_uses_min_cm_score_and_validates():
    decision = mixture_decision([0.2, 0.3], cm_score=[1.5, -0.25])
    assert decision.bonafide_score == -0.25 and decision.composition == "BB"
    with pytest.raises(ValueError, match="NaN"):
        mixture_decision([np.nan, 0.1])
    with pytest.raises(ValueError, match="spoof_threshold"):
        mixture_decision([0.1], spoof_threshold=1.5)
