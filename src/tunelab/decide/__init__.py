"""Decide: what the stored numbers say. Arms grouped from finished runs, paired
comparisons and the verdict, simultaneous intervals, per-example flips, cost and break-
even, and the learning-curve forecast."""
