"""Verification and identification metrics (numpy only): ROC, AUC, EER, TAR@FAR, best threshold,
k-fold accuracy, open-set rank-1 and rejection; BCubed scores of a clustering."""
from cnnkit.eval.clustering import BCubed, bcubed
from cnnkit.eval.verification import (
    VerificationReport,
    auc,
    best_threshold,
    eer,
    kfold_accuracy,
    kfold_decision_accuracy,
    lfw_accuracy,
    roc_curve,
    tar_at_far,
    verification_report,
)

__all__ = [
    "BCubed",
    "bcubed",
    "VerificationReport",
    "auc",
    "best_threshold",
    "eer",
    "kfold_accuracy",
    "kfold_decision_accuracy",
    "lfw_accuracy",
    "roc_curve",
    "tar_at_far",
    "verification_report",
]
