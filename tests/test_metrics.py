"""amongus.metrics: the ASVspoof EER (against a verbatim copy of the official code and
hand-worked values), minDCF and actDCF (ASVspoof 5), AUC, ROC/DET points, the shared
inverted-score warning, binary and multiclass reports, per-group EER, score files and plots."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from amongus import metrics
from amongus.manifest import DuplicateIdError, decode_field, encode_field
from amongus.metrics import (
    InvertedScoresWarning,
    act_dcf,
    auc_score,
    binary_report,
    det_curve,
    det_points,
    eer,
    eer_by_group,
    llr_threshold,
    min_dcf,
    multiclass_report,
    normalized_dcf,
    read_asvspoof_scores,
    roc_points,
    split_scores,
    write_asvspoof_scores,
)


# ------------------------------------------------------------------ the official ASVspoof code
# Verbatim from the ASVspoof 2019 evaluation package (eval_metrics.py), the reference `eer`
# must reproduce.
def compute_det_curve(target_scores, nontarget_scores):
    n_scores = target_scores.size + nontarget_scores.size
    all_scores = np.concatenate((target_scores, nontarget_scores))
    labels = np.concatenate((np.ones(target_scores.size), np.zeros(nontarget_scores.size)))

    # Sort labels based on scores
    indices = np.argsort(all_scores, kind="mergesort")
    labels = labels[indices]

    # Compute false rejection and false acceptance rates
    tar_trial_sums = np.cumsum(labels)
    nontarget_trial_sums = nontarget_scores.size - (np.arange(1, n_scores + 1) - tar_trial_sums)

    frr = np.concatenate(
        (np.atleast_1d(0), tar_trial_sums / target_scores.size)
    )  # false rejection rates
    far = np.concatenate(
        (np.atleast_1d(1), nontarget_trial_sums / nontarget_scores.size)
    )  # false acceptance rates
    thresholds = np.concatenate(
        (np.atleast_1d(all_scores[indices[0]] - 0.001), all_scores[indices])
    )  # Thresholds are the sorted scores

    return frr, far, thresholds


def compute_eer(target_scores, nontarget_scores):
    """Returns equal error rate (EER) and the corresponding threshold."""
    frr, far, thresholds = compute_det_curve(target_scores, nontarget_scores)
    abs_diffs = np.abs(frr - far)
    min_index = np.argmin(abs_diffs)
    eer = np.mean((frr[min_index], far[min_index]))
    return eer, thresholds[min_index]


@pytest.mark.parametrize("seed", range(6))
def test_eer_matches_official_code_on_random_scores(seed):
    rng = np.random.default_rng(seed)
    n_bonafide, n_spoof = rng.integers(1, 300, size=2)
    if seed % 2:  # coarse integer scores: many ties across and within classes
        bonafide = rng.integers(-3, 6, n_bonafide).astype(float)
        spoof = rng.integers(-6, 3, n_spoof).astype(float)
    else:
        bonafide = rng.normal(1.0, 1.5, n_bonafide)
        spoof = rng.normal(-1.0, 1.5, n_spoof)
    expected = compute_eer(bonafide, spoof)
    assert eer(bonafide, spoof) == (float(expected[0]), float(expected[1]))
    official = compute_det_curve(bonafide, spoof)
    for ours, theirs in zip(det_curve(bonafide, spoof), official, strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_eer_hand_worked_values():
    # Perfectly separable: EER 0 at the highest spoof score.
    assert eer([2.0, 3.0], [0.0, 1.0]) == (0.0, 1.0)
    # Sorted: .1s .3s .4b .5s .7b .8s .9b; after the 3rd score FRR = 1/3, FAR = 2/4 (diff 1/6),
    # after the 4th FRR = 1/3, FAR = 1/4 (diff 1/12, the smallest): EER = (1/3 + 1/4) / 2 = 7/24.
    value, threshold = eer([0.9, 0.4, 0.7], [0.1, 0.5, 0.3, 0.8])
    assert value == pytest.approx(7 / 24) and threshold == 0.5
    # Sorted: 0s 1s 2s 3b 4b 5s. (FRR, FAR) after 2.0 is (0, 1/4) and after 3.0 is (1/2, 1/4):
    # both |FRR - FAR| = 1/4 exactly; the first wins: EER 1/8 at 2.0, not 3/8 at 3.0.
    assert eer([3.0, 4.0], [0.0, 1.0, 2.0, 5.0]) == (0.125, 2.0)
    # In floating point |1/3 - 1/2| > |2/3 - 1/2|: no tie here, the second point wins (as in the
    # official code): (2/3 + 1/2) / 2 = 7/12.
    value, threshold = eer([1.0, 2.0, 3.0], [0.5, 2.5])
    assert value == pytest.approx(7 / 12) and threshold == 2.0
    # Fully inverted scores (and a warning saying so).
    with pytest.warns(InvertedScoresWarning):
        assert eer([0.0, 1.0], [2.0, 3.0]) == (1.0, 1.0)


def test_eer_with_identical_scores_follows_the_official_tie_order():
    # The official code does not merge ties: tied scores are passed one by one, bonafide first,
    # so all-identical scores give EER 1.0 (an interpolating EER would say 0.5).
    assert eer([1.0, 1.0], [1.0, 1.0]) == (1.0, 1.0)
    assert eer([0.5] * 3, [0.5] * 5)[0] == 1.0
    # A tie across classes: bonafide 1.0 sorts before spoof 1.0, so the scores are not separable
    # (EER 0.5 at 1.0); with the spoof first they would be (EER 0).
    assert eer([1.0, 2.0], [0.0, 1.0]) == (0.5, 1.0)
    assert eer([1.0 + 1e-9, 2.0], [0.0, 1.0]) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("bonafide", "spoof", "match"),
    [
        ([], [1.0], "bonafide_scores is empty"),
        ([1.0], [], "spoof_scores is empty"),
        ([1.0, np.nan], [0.0], "NaN"),
        ([1.0], [np.inf], "NaN or infinite"),
        ([[1.0, 2.0]], [0.0], "1-D"),
    ],
)
def test_eer_rejects_bad_input(bonafide, spoof, match):
    with pytest.raises(ValueError, match=match):
        eer(bonafide, spoof)


def test_split_scores_orientation():
    bonafide, spoof = split_scores(["spoof", "bonafide", 1, "real"], [0.9, 0.2, 0.7, 0.4])
    np.testing.assert_array_equal(bonafide, [0.2, 0.4])
    np.testing.assert_array_equal(spoof, [0.9, 0.7])
    bonafide, spoof = split_scores(["fake", "real"], [0.9, 0.2], higher="spoof")
    assert bonafide.tolist() == [-0.2] and spoof.tolist() == [-0.9]
    with pytest.raises(ValueError, match="2 labels for 3 scores"):
        split_scores(["spoof", "bonafide"], [1.0, 2.0, 3.0])


# ------------------------------------------------------------------ AUC, ROC, DET
def test_auc_score_orientation_and_inverted_warning():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    bonafide, spoof = rng.normal(1, 1, 50), rng.normal(0, 1, 70)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = auc_score(bonafide, spoof)
    # Same as the AUC of a spoof score (-cm_score) with spoof positive.
    truth = np.r_[np.zeros(50), np.ones(70)]
    assert value == pytest.approx(roc_auc_score(truth, -np.r_[bonafide, spoof]))
    # Hand count: pairs (b, s) with b > s: (3>1, 3>2, 0.5>...none) = 2 of 4, ties count half.
    assert auc_score([3.0, 0.5], [1.0, 2.0], warn_inverted=False) == 0.5
    assert auc_score([2.0, 3.0], [0.0, 1.0]) == 1.0
    assert auc_score([1.0, 1.0], [1.0]) == 0.5
    with pytest.warns(UserWarning, match="inverted"):
        assert auc_score(spoof, bonafide) == pytest.approx(1 - value)


@pytest.mark.parametrize(
    "metric",
    [
        lambda b, s, **kw: eer(b, s, **kw),
        lambda b, s, **kw: min_dcf(b, s, **kw),
        lambda b, s, **kw: act_dcf(b, s, threshold=0.5, **kw),
        lambda b, s, **kw: auc_score(b, s, **kw),
    ],
    ids=["eer", "min_dcf", "act_dcf", "auc_score"],
)
def test_every_ranking_metric_warns_on_inverted_scores(metric):
    # Repro F9: spoof probabilities passed where bonafide scores are expected; eer() said 1.0
    # without a word while auc_score warned. One shared check now warns for each metric alike.
    p_bonafide, p_spoof = np.linspace(0.0, 0.3, 20), np.linspace(0.7, 1.0, 20)
    with pytest.warns(InvertedScoresWarning, match="inverted.*higher = bonafide") as caught:
        metric(p_bonafide, p_spoof)
    assert len(caught) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metric(-p_bonafide, -p_spoof)  # the right orientation: silent
        metric(p_bonafide, p_spoof, warn_inverted=False)


def test_binary_report_warns_once_on_inverted_scores():
    truth = ["bonafide"] * 3 + ["spoof"] * 3
    with pytest.warns(InvertedScoresWarning) as caught:
        binary_report(truth, truth, cm_scores=[0.0, 0.1, 0.2, 0.9, 1.0, 1.1])
    assert len(caught) == 1


# ------------------------------------------------------------------ minDCF, actDCF
def test_dcf_hand_worked_values():
    bonafide, spoof = [0.9, 0.4, 0.7], [0.1, 0.5, 0.3, 0.8]
    # ASVspoof 5: DCF = (1 * 0.95 * Pmiss + 10 * 0.05 * Pfa) / min(0.95, 0.5). Along the DET
    # curve (sorted .1s .3s .4b .5s .7b .8s .9b, rejecting up to each score) the costs are
    # 1.0, .75, .5, 1.133, .883, 1.517, 1.267, 1.9: the minimum is 0.5 after 0.3 (no bonafide
    # rejected, 2 of 4 spoofs accepted).
    assert min_dcf(bonafide, spoof) == (pytest.approx(0.5), 0.3)
    # Accept >= 0.5: bonafide 0.4 missed (1/3), spoofs 0.5 and 0.8 accepted (2/4).
    assert act_dcf(bonafide, spoof, threshold=0.5) == pytest.approx((0.95 / 3 + 0.25) / 0.5)
    assert normalized_dcf(0.0, 1.0) == 1.0 and normalized_dcf(1.0, 0.0) == pytest.approx(1.9)
    # other costs: equal priors and costs make the DCF Pmiss + Pfa
    assert normalized_dcf(0.25, 0.5, p_spoof=0.5, c_miss=1, c_fa=1) == pytest.approx(0.75)
    assert llr_threshold() == pytest.approx(-np.log(1.9))
    with pytest.raises(ValueError, match="p_spoof"):
        min_dcf(bonafide, spoof, p_spoof=1.0)
    with pytest.raises(ValueError, match="threshold must be finite"):
        act_dcf(bonafide, spoof, threshold=np.nan)


@pytest.mark.parametrize("seed", range(4))
def test_min_dcf_is_the_lowest_cost_over_all_thresholds(seed):
    # Tie-free scores: every DET point is a threshold, so minDCF must equal a brute-force
    # minimum of actDCF over thresholds between consecutive scores, and never exceed 1
    # (accepting everything costs 1).
    rng = np.random.default_rng(seed)
    bonafide = rng.normal(1.0, 1.0, rng.integers(5, 80))
    spoof = rng.normal(-0.5, 1.5, rng.integers(5, 80))
    p_spoof = [0.05, 0.2, 0.5, 0.9][seed]
    value, threshold = min_dcf(bonafide, spoof, p_spoof=p_spoof)
    edges = np.sort(np.r_[bonafide, spoof])
    candidates = np.r_[edges[0] - 1, (edges[1:] + edges[:-1]) / 2, edges[-1] + 1]
    costs = [
        act_dcf(bonafide, spoof, threshold=t, p_spoof=p_spoof, warn_inverted=False)
        for t in candidates
    ]
    assert value == pytest.approx(min(costs)) and value <= 1.0
    # the returned threshold reaches it: accept strictly above it
    reached = normalized_dcf(
        np.mean(bonafide <= threshold), np.mean(spoof > threshold), p_spoof=p_spoof
    )
    assert reached == pytest.approx(value)


def test_act_dcf_measures_calibration_min_dcf_does_not():
    rng = np.random.default_rng(3)
    bonafide, spoof = rng.normal(2, 1, 200), rng.normal(-2, 1, 200)
    shifted = min_dcf(bonafide + 5, spoof + 5)[0]
    assert shifted == pytest.approx(min_dcf(bonafide, spoof)[0])  # ranking only
    good = act_dcf(bonafide, spoof, threshold=llr_threshold())
    bad = act_dcf(bonafide + 5, spoof + 5, threshold=llr_threshold())
    assert good < 0.5 < bad


def test_roc_and_det_points():
    bonafide, spoof = [0.9, 0.4, 0.7], [0.1, 0.5, 0.3, 0.8]
    det = det_points(bonafide, spoof)
    frr, far, thresholds = det_curve(bonafide, spoof)
    np.testing.assert_array_equal(det.x, far)
    np.testing.assert_array_equal(det.y, frr)
    roc = roc_points(bonafide, spoof)
    assert (roc.x[0], roc.y[0]) == (0.0, 0.0) and (roc.x[-1], roc.y[-1]) == (1.0, 1.0)
    assert np.all(np.diff(roc.x) >= 0) and np.all(np.diff(roc.y) >= 0)
    # At threshold 0.7 (accept >= 0.7): bonafide 0.9, 0.7 accepted (2/3); spoof 0.8 (1/4).
    at = list(roc.thresholds).index(0.7)
    assert (roc.x[at], roc.y[at]) == (0.25, pytest.approx(2 / 3))
    assert set(roc.to_dict()) == {"fpr", "tpr", "thresholds"}


# ------------------------------------------------------------------ reports
def test_binary_report_hand_computed():
    truth = ["spoof", "spoof", "spoof", "bonafide", "bonafide"]
    predicted = ["spoof", "bonafide", "spoof", "spoof", "bonafide"]
    probability = [0.9, 0.4, 0.8, 0.6, 0.1]
    report = binary_report(truth, predicted, probability)
    # TP = 2, FN = 1, FP = 1, TN = 1 (positive = spoof).
    assert report["confusion_matrix"] == [[1, 1], [1, 2]]
    assert report["labels"] == ["bonafide", "spoof"]
    assert report["accuracy"] == pytest.approx(3 / 5)
    assert report["precision"] == pytest.approx(2 / 3)
    assert report["recall"] == pytest.approx(2 / 3)
    assert report["f1"] == pytest.approx(2 / 3)
    assert (report["n"], report["n_bonafide"], report["n_spoof"]) == (5, 2, 3)
    assert report["n_predicted_spoof"] == 3
    # bonafide-oriented scores -p: bonafide {-.6, -.1}, spoof {-.9, -.4, -.8}: 5 of 6 pairs right.
    assert report["auc"] == pytest.approx(5 / 6)
    value, threshold = eer([-0.6, -0.1], [-0.9, -0.4, -0.8])
    assert report["eer"] == value
    assert report["eer_threshold"] == -threshold  # in spoof-probability units
    assert report["score_used"] == "spoof_probability"
    cost, cost_threshold = min_dcf([-0.6, -0.1], [-0.9, -0.4, -0.8])
    assert report["min_dcf"] == cost and report["min_dcf_threshold"] == -cost_threshold
    # actDCF is the cost of the decisions: 1 of 2 bonafide rejected, 1 of 3 spoofs accepted.
    assert report["act_dcf"] == pytest.approx((0.95 * 1 / 2 + 0.05 * 10 * 1 / 3) / 0.5)
    assert report["dcf_parameters"] == {"p_spoof": 0.05, "c_miss": 1.0, "c_fa": 10.0}


def test_binary_report_prefers_cm_scores_and_handles_one_class():
    truth = [1, 1, 0, 0]  # 1 = spoof
    cm = [-5.0, -3.0, 2.0, 4.0]
    report = binary_report(truth, ["spoof", "spoof", "real", "bonafide"], [0.5] * 4, cm_scores=cm)
    assert report["score_used"] == "cm_score"
    assert report["eer"] == 0.0 and report["auc"] == 1.0 and report["accuracy"] == 1.0
    single = binary_report(["spoof", "spoof"], ["spoof", "bonafide"], [0.9, 0.2])
    assert single["eer"] is None and single["auc"] is None
    assert single["notes"] == ["no bonafide items: EER, minDCF, actDCF and AUC undefined"]
    assert single["min_dcf"] is None and single["act_dcf"] is None
    assert single["recall"] == 0.5
    with pytest.raises(ValueError, match="2 true labels for 3"):
        binary_report(["spoof", "bonafide"], ["spoof"] * 3)
    with pytest.raises(ValueError, match="unknown label"):
        binary_report(["spoof", "maybe"], ["spoof", "spoof"])


def test_multiclass_report_hand_computed():
    truth = ["SS", "SS", "SB", "SB", "SB", "BB", "BB", "BB"]
    predicted = ["SS", "SB", "SB", "SB", "BB", "BB", "BB", "SS"]
    report = multiclass_report(truth, predicted)
    assert report["labels"] == ["SS", "SB", "BB"]
    assert report["confusion_matrix"] == [[1, 1, 0], [0, 2, 1], [1, 0, 2]]
    assert report["accuracy"] == pytest.approx(5 / 8)
    per_class = report["per_class"]
    assert per_class["SS"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert per_class["SB"]["precision"] == pytest.approx(2 / 3)
    assert per_class["BB"]["recall"] == pytest.approx(2 / 3)
    assert per_class["BB"]["support"] == 3
    assert report["macro"]["precision"] == pytest.approx((0.5 + 2 / 3 + 2 / 3) / 3)
    assert report["weighted"]["f1"] == pytest.approx((2 * 0.5 + 3 * 2 / 3 + 3 * 2 / 3) / 8)


def test_multiclass_report_label_order_and_checks():
    report = multiclass_report(["SBB", "BBB", "SSB"], ["SSS", "BBB", "SSB"])
    assert report["labels"] == ["SSS", "SSB", "SBB", "BBB"]
    explicit = multiclass_report(["SB", "BB"], ["SB", "SB"], labels=["SS", "SB", "BB"])
    assert explicit["confusion_matrix"] == [[0, 0, 0], [0, 1, 0], [0, 1, 0]]
    assert explicit["per_class"]["SS"]["support"] == 0
    with pytest.raises(ValueError, match=r"\['SS'\] are not in labels"):
        multiclass_report(["SS", "BB"], ["SB", "BB"], labels=["SB", "BB"])


def test_eer_by_group_per_system_and_per_language():
    cm = np.array([3.0, 2.5, 2.0, 1.5, 0.0, 1.0, 2.2, 2.8, 0.7])
    labels = ["bonafide"] * 4 + ["spoof"] * 5
    systems = ["-"] * 4 + ["A01", "A01", "A02", "A02", "A03"]
    per_system = eer_by_group(cm, labels, systems, bonafide_pool="all")
    assert list(per_system) == ["A01", "A02", "A03"]  # bonafide "-" is not a group
    assert per_system["A01"]["eer"] == 0.0 and per_system["A01"]["n_bonafide"] == 4
    assert (per_system["A02"]["eer"], per_system["A02"]["threshold"]) == eer(
        cm[:4], [2.2, 2.8], warn_inverted=False
    )
    assert per_system["A03"]["n_spoof"] == 1 and per_system["A03"]["skipped"] is None

    languages = ["en", "en", "fr", "fr", "en", "en", "de", "de", "en"]
    per_language = eer_by_group(cm, labels, languages)
    assert per_language["en"]["eer"] == eer([3.0, 2.5], [0.0, 1.0, 0.7])[0]
    assert (per_language["en"]["n_bonafide"], per_language["en"]["n_spoof"]) == (2, 3)
    assert per_language["fr"]["eer"] is None and per_language["fr"]["skipped"] == "no spoof items"
    assert per_language["de"]["skipped"] == "no bonafide items"
    with pytest.raises(ValueError, match="differ in length"):
        eer_by_group(cm, labels, languages[:-1])


def test_eer_by_group_reports_min_and_act_dcf():
    cm = np.array([3.0, 2.5, 2.0, 1.5, 0.0, 1.0, 2.2, 2.8])
    labels = ["bonafide"] * 4 + ["spoof"] * 4
    systems = ["-"] * 4 + ["A01", "A01", "A02", "A02"]
    decided = ["bonafide", "bonafide", "spoof", "bonafide", "spoof", "spoof", "bonafide", "spoof"]
    groups = eer_by_group(cm, labels, systems, bonafide_pool="all", predicted_labels=decided)
    assert groups["A02"]["min_dcf"] == min_dcf(cm[:4], [2.2, 2.8], warn_inverted=False)[0]
    # A02: 1 of 4 bonafide rejected, 1 of 2 of its spoofs accepted
    assert groups["A02"]["act_dcf"] == pytest.approx(normalized_dcf(0.25, 0.5))
    assert groups["A01"]["act_dcf"] == pytest.approx(normalized_dcf(0.25, 0.0))
    assert eer_by_group(cm, labels, systems)["A01"]["act_dcf"] is None  # no decisions given


# ------------------------------------------------------------------ score files
def test_asvspoof_score_file_round_trip(tmp_path):
    path = tmp_path / "scores" / "cm.txt"
    scores = np.array([-3.14, 2.0 / 3.0, 1e-12, 7.25])
    write_asvspoof_scores(
        path,
        ["LA_E_2834763", "LA_E_1", "LA_E_2", "LA_E_3"],
        ["A11", "-", "A07", "-"],
        ["spoof", "bonafide", "fake", "real"],
        scores,
    )
    lines = path.read_text().splitlines()
    assert lines[0] == "LA_E_2834763 A11 spoof -3.14"
    assert lines[2].split()[:3] == ["LA_E_2", "A07", "spoof"]
    back = read_asvspoof_scores(path)
    assert back.utt_ids == ["LA_E_2834763", "LA_E_1", "LA_E_2", "LA_E_3"]
    assert back.systems == ["A11", "-", "A07", "-"]
    assert back.labels == ["spoof", "bonafide", "spoof", "bonafide"]
    np.testing.assert_array_equal(back.cm_scores, scores)  # full precision
    bonafide, spoof = back.split()
    assert bonafide.tolist() == [2.0 / 3.0, 7.25] and spoof.tolist() == [-3.14, 1e-12]


def test_asvspoof_score_file_refuses_bad_rows(tmp_path):
    path = tmp_path / "cm.txt"
    with pytest.raises(ValueError, match="NaN"):
        write_asvspoof_scores(path, ["a", "b"], ["-", "A01"], ["bonafide", "spoof"], [1, np.nan])
    assert not path.exists()
    with pytest.raises(ValueError, match="row 1: empty field"):
        write_asvspoof_scores(path, [""], ["-"], ["bonafide"], [1.0])
    with pytest.raises(ValueError, match="differ in length"):
        write_asvspoof_scores(path, ["a"], ["-"], ["bonafide", "spoof"], [1.0])
    path.write_text("LA_1 - bonafide 1.5\nLA_2 A01 spoof\n")
    with pytest.raises(ValueError, match=r"cm.txt:2: expected 'UTT SYSTEM LABEL SCORE'"):
        read_asvspoof_scores(path)
    path.write_text("LA_1 - bonafide nan\n")
    with pytest.raises(ValueError, match="cm.txt:1: score 'nan' is not finite"):
        read_asvspoof_scores(path)


def test_score_file_ids_round_trip_and_never_merge(tmp_path):
    # Repro F1: "a b" and "a_b" were both written "a_b". Ids are now percent-encoded
    # reversibly: distinct ids stay distinct and read back exactly.
    ids = ["real/a b", "real/a_b", "x\ty", "100%", "café/é", "LA_E_1"]
    path = write_asvspoof_scores(
        tmp_path / "cm.txt", ids, ["sys 1", "-", "-", "-", "-", "A01"], ["bonafide"] * 6, range(6)
    )
    tokens = [line.split() for line in path.read_text(encoding="utf-8").splitlines()]
    assert all(len(fields) == 4 for fields in tokens)
    assert len({fields[0] for fields in tokens}) == 6
    assert tokens[0][:2] == ["real/a%20b", "sys%201"] and tokens[5][0] == "LA_E_1"
    back = read_asvspoof_scores(path)
    assert back.utt_ids == ids and back.systems[0] == "sys 1"
    for text in ids + ["%41", " ", "\x00"]:
        assert decode_field(encode_field(text)) == text


def test_score_files_refuse_duplicate_ids(tmp_path):
    path = tmp_path / "cm.txt"
    with pytest.raises(DuplicateIdError, match=r"'U1': .*cm.txt row 1 and .*cm.txt row 3"):
        write_asvspoof_scores(path, ["U1", "U2", "U1"], ["-"] * 3, ["bonafide"] * 3, [1, 2, 3])
    assert not path.exists()
    path.write_text("U1 - bonafide 1.0\nU2 - bonafide 2.0\n\nU1 A01 spoof 3.0\n")
    with pytest.raises(DuplicateIdError, match=r"'U1': .*cm.txt:1 and .*cm.txt:4"):
        read_asvspoof_scores(path)


def test_score_file_reader_ignores_a_byte_order_mark(tmp_path):
    path = tmp_path / "cm.txt"
    path.write_text("LA_E_1 - bonafide 1.5\n", encoding="utf-8-sig")
    assert read_asvspoof_scores(path).utt_ids == ["LA_E_1"]


# ------------------------------------------------------------------ plots
def test_plots_write_png_files(tmp_path):
    rng = np.random.default_rng(1)
    bonafide, spoof = rng.normal(1, 1, 40), rng.normal(-1, 1, 60)
    report = multiclass_report(["SS", "SB", "BB", "SB"], ["SB", "SB", "BB", "BB"])
    paths = [
        metrics.plot_roc(bonafide, spoof, tmp_path / "roc.png", extra_curves={"b": (spoof, spoof)}),
        metrics.plot_det(bonafide, spoof, tmp_path / "plots" / "det.png"),
        metrics.plot_confusion(
            report["confusion_matrix"], report["labels"], tmp_path / "conf.png", normalize=True
        ),
    ]
    for path in paths:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    with pytest.raises(ValueError, match="for 2 labels"):
        metrics.plot_confusion([[1, 2, 3]], ["SS", "BB"], tmp_path / "bad.png")
