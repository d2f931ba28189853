"""The finalists stage: the best trials re-evaluated with the full attack suite and the official
AutoAttack (`eval.autoattack: finalists`). `rules` reads how many and by what from the spec,
`choose` picks them, `evaluate` runs them (Ray tasks, `robprune.evaluation.evaluate_finalists`
each), `store` keeps their results in the experiment, `present` shows them, and `finalize` is
`robprune finalize`. Kept empty of imports: the spec parser reads `rules` without Ray.
"""
