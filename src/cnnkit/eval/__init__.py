"""Verification and identification metrics (numpy only): ROC, AUC, EER, TAR@FAR, best threshold,
k-fold accuracy, open-set rank-1 and rejection."""
from cnnkit.eval.verification import (
    VerificationReport,
    auc,
    best_threshold,
    eer,
    kfold_accuracy,
    roc_curve,
    tar_at_far,
    verification_report,
)

__all__ = [
    "VerificationReport",
    "auc",
    "best_threshold",
    "eer",
    "kfold_accuracy",
    "roc_curve",
    "tar_at_far",
    "verification_report",
]
