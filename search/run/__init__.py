"""Running a search on Ray: the dense stage, Tune, resume, Ctrl-C, the finalists stage."""
