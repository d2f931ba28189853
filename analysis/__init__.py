"""Statistics and ablation reports from the Parquet results (docs/results.md).

Does the pruning criterion or the fine-tuning dominate robustness?
`analysis.document.build.build_report` loads one or many experiments, decomposes the variance
of the response (ANOVA on balanced grids, Shapley on search data, with bootstrap intervals),
and `analysis.document.output.write_report` writes index.html, report.md and CSVs. Needs
neither Ray nor torch nor a GPU. Submodules are imported lazily by their users.

One sub-package per stage, each importing only its own and earlier ones: read <- design <-
stats <- verdict <- render <- document (docs/architecture.md).
"""

__all__: list[str] = []
