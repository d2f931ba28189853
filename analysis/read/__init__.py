"""Read: the results tables of one or many experiments and what they carry (provenance).

The bottom of the pipeline: later stages work on the `ResultSet` read here and never open a
results file again. Stages: read <- design <- stats <- verdict <- render <- document.
"""
