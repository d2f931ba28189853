"""The experiment on storage: its directory layout, a trial's files, stored finalists."""
