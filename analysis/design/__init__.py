"""Design: the trials as a factorial design (factors, levels, blocks, balance, checks).

Decides what the statistics compare: which columns are factors, which levels are the same
configuration, whether the headline is a per-epoch metric (early-stopped searches), and the
question with its test level.
"""
