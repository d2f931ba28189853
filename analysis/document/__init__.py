"""The report as a document: the pipeline assembled, laid out as blocks, and written.

`build.build_report` runs read -> design -> stats -> verdict and draws the figures;
`layout.blocks` orders the sections; `output.write_report` writes index.html, report.md and
the CSVs. The last stage: nothing in the earlier ones imports it.
"""
