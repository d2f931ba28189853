"""Searches on a Ray cluster: submit, follow, list and stop them through Ray's Jobs API.

`cluster.cli` holds the subcommands, `cluster.client` the connection and its errors,
`cluster.submit` what a job carries, `cluster.job_entry` what it runs on the cluster. The
cluster configurations (`aws.yaml`, `gcp.yaml`, `kuberay.yaml`, `Dockerfile`) sit beside them.
"""
