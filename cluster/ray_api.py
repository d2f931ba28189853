"""The parts of Ray's Jobs and State APIs that robprune's cluster commands use.

Kept apart so that `cluster.client` can load them on first use (`client._ray_api`): the
commands' parsing, the spec checks and `robprune --help` must not wait for Ray to import.
"""

from __future__ import annotations

from ray.exceptions import AuthenticationError
from ray.job_submission import JobSubmissionClient
from ray.util.state import list_nodes

__all__ = ["AuthenticationError", "JobSubmissionClient", "list_nodes"]
