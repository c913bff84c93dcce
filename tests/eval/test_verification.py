import numpy as np
import pytest

from cnnkit.eval import auc, best_threshold, eer, kfold_accuracy, roc_curve, tar_at_far, verification_report
from cnnkit.eval.identification import open_set_report
from cnnkit.eval.verification import accuracy_at


def test_perfectly_separated():
    d = np.array([0.1, 0.2, 0.8, 0.9])
    y = np.array([True, True, False, False])
    assert auc(d, y) == 1.0 and eer(d, y) == 0.0
    thr, acc = best_threshold(d, y)
    assert acc == 1.0 and thr == pytest.approx(0.5)


def test_auc_matches_rank_statistic():
    rng = np.random.default_rng(0)
    y = rng.random(400) < 0.5
    d = np.where(y, rng.normal(0.5, 0.2, 400), rng.normal(0.8, 0.2, 400))
    pos, neg = d[y], d[~y]
    mann_whitney = np.mean(pos[:, None] < neg[None, :]) + 0.5 * np.mean(pos[:, None] == neg[None, :])
    assert auc(d, y) == pytest.approx(mann_whitney, abs=1e-12)


def test_best_threshold_is_optimal_by_brute_force():
    rng = np.random.default_rng(1)
    y = rng.random(200) < 0.4
    d = np.round(np.where(y, rng.normal(0.5, 0.2, 200), rng.normal(0.8, 0.2, 200)), 2)
    thr, acc = best_threshold(d, y)
    brute = max(np.mean((d <= t) == y) for t in np.r_[-1, d])
    assert acc == pytest.approx(brute) and accuracy_at(d, y, thr) == pytest.approx(brute)


def test_roc_endpoints_and_tar_at_far():
    d = np.array([0.1, 0.3, 0.35, 0.6, 0.7])
    y = np.array([True, False, True, False, True])
    far, tar, thr = roc_curve(d, y)
    assert (far[0], tar[0]) == (0.0, 0.0) and (far[-1], tar[-1]) == (1.0, 1.0)
    assert tar_at_far(d, y, 0.0) == pytest.approx(1 / 3)
    assert tar_at_far(d, y, 0.5) == pytest.approx(2 / 3)


def test_nan_counts_as_rejection():
    d = np.array([0.1, np.nan, 0.9])
    y = np.array([True, True, False])
    assert accuracy_at(d, y, 0.5) == pytest.approx(2 / 3)


def test_kfold_uses_other_folds():
    d = np.array([0.1, 0.9, 0.2, 0.8, 0.3, 0.7])
    y = np.array([1, 0, 1, 0, 1, 0], bool)
    accs, thrs = kfold_accuracy(d, y, [0, 0, 1, 1, 2, 2])
    assert accs == [1.0, 1.0, 1.0] and len(thrs) == 3


def test_report_rule_of_30():
    d = np.linspace(0, 1, 100)
    y = d < 0.5
    r = verification_report(d, y)
    assert r.impostor_pairs == 50 and r.far_supported_down_to == pytest.approx(0.6)
    assert set(r.tar_at_far) == {"0.01", "0.001"}


def test_open_set_report():
    r = open_set_report(["a", "b", None, None, "a"], ["a", "c", "b", "x", "y"], enrolled={"a", "b", "c"})
    assert r.rank1 == pytest.approx(1 / 3) and r.rejection == pytest.approx(1 / 2)


def test_kfold_decisions_are_fitted_without_the_scored_fold():
    from cnnkit.eval.verification import kfold_decision_accuracy

    same = np.array([True, False] * 10)
    folds = np.repeat(np.arange(10), 2)
    seen = []

    def decide(train, test):
        seen.append((train.copy(), test.copy()))
        return ~same[test] if test[0] else same[test]  # wrong on fold 0 only

    accs = kfold_decision_accuracy(same, folds, decide)
    assert accs == [0.0] + [1.0] * 9
    for train, test in seen:
        assert not (train & test).any() and (train | test).all() and test.sum() == 2
    assert kfold_decision_accuracy(same, folds, decide, score=[3]) == [1.0]
