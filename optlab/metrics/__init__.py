"""Test-set metrics with scikit-learn parity."""

from optlab.metrics.scores import classification_metrics, predicted_labels, regression_metrics

__all__ = ["classification_metrics", "predicted_labels", "regression_metrics"]
