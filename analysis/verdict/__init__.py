"""The verdict: criterion or fine-tuning? The headline answer and the sentences behind it.

Fixed answers decided by fixed rules (docs/analysis.md), from the statistics of each response.
"""
