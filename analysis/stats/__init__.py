"""Statistics on a design: variance decompositions, tests, marginal means, power.

ANOVA on balanced grids, Shapley (LMG) elsewhere, bootstrap intervals, estimated marginal
means, the minimum detectable effect and the effects read straight off the trials.
"""
