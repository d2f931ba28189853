"""Files robprune reads and writes: atomic writes and locks (`atomic`), the result tables'
schema (`results_schema`), and where the dense-model cache keeps its entries (`dense_cache`).

Torch-free, so the search, the report and the CLI read and write the same layout without
loading torch. No re-exports: import the module that holds the name.
"""
