"""Classification breakdown of one arm's predictions: per-class precision, recall, F1 and
support, and a confusion matrix (scikit-learn), for tasks scored as classification.

A prediction that is none of the labels counts as its own column, `(other)`, so a model
that paraphrases instead of answering a label shows up as such rather than vanishing.
"""

from __future__ import annotations

from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from tunelab.tasks.metrics_text import label_match

OTHER = "(other)"


def to_label(prediction: str, labels: list[str]) -> str:
    """The label a generated text names (its first line, as label_match reads it), else OTHER.

    >>> to_label("Inform.\\nmore text", ["inform", "request"])
    'inform'
    >>> to_label("It is a statement about a game", ["inform", "request"])
    '(other)'
    """
    lines = prediction.strip().splitlines()
    first = lines[0] if lines else ""
    return next((lab for lab in labels if label_match(first, lab)), OTHER)


def breakdown(examples: list[dict], labels: list[str]) -> dict:
    """{"rows": per-class dicts, "labels": the predicted axis, "matrix": counts
    [reference][predicted]} over `examples` (stored predictions with target and prediction).
    Rows are the labels only (no reference is "(other)"); columns add "(other)" if predicted."""
    refs = [e["target"].strip() for e in examples]
    labels = sorted(set(labels) | set(refs))
    preds = [to_label(e["prediction"], labels) for e in examples]
    p, r, f, s = precision_recall_fscore_support(refs, preds, labels=labels, zero_division=0)
    rows = [{"label": lab, "precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
             "support": int(s[i])} for i, lab in enumerate(labels)]
    axis = labels + ([OTHER] if OTHER in preds else [])
    matrix = confusion_matrix(refs, preds, labels=axis)[: len(labels)]
    return {"rows": rows, "labels": axis, "matrix": matrix.tolist(), "n": len(examples),
            "other": preds.count(OTHER)}
