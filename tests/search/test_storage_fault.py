"""What counts as a storage fault (search.run.storage_fault.fault_cause) and the line it
gives; the search-level behaviour is tests/system/test_search_storage_faults.py."""

from __future__ import annotations

import errno

import pytest

from search.run.storage_fault import StorageFault, as_storage_fault, fault_cause


@pytest.mark.parametrize(
    ("code", "cause"),
    [
        (errno.ENOSPC, "is full"),
        (errno.EROFS, "is read-only"),
        (errno.EACCES, "refuses writes"),
        (errno.EDQUOT, "over its quota"),
    ],
)
def test_errno_faults_are_named(code, cause):
    found = fault_cause(OSError(code, "x", "/data/exp/tune/ckpt"))
    assert found is not None and found[0] == "/data/exp/tune/ckpt" and cause in found[1]


def test_a_wrapped_fault_is_found_and_a_trial_error_is_not():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("while saving the checkpoint") from inner
    except RuntimeError as outer:
        assert fault_cause(outer) is not None
    assert fault_cause(ValueError("loss is NaN")) is None
    assert fault_cause(FileNotFoundError(errno.ENOENT, "no such file")) is None
    s3 = OSError("When uploading part for key 'k': AWS Error NETWORK_CONNECTION during call")
    assert "object-store" in fault_cause(s3)[1]


def test_the_line_names_the_experiment_and_how_to_continue():
    fault = as_storage_fault(OSError(errno.ENOSPC, "full"))
    assert isinstance(fault, StorageFault)
    line = fault.line("/data/exp")
    assert (
        line
        == "the storage under /data/exp is full: free space and run `robprune resume /data/exp`"
    )


def test_a_fault_before_ray_starts_is_the_same_line_not_a_traceback(tmp_path):
    """Between the checks before starting and Ray, the storage can fail too (the soak's disk
    filled one second into a resume): recording the driver gives the storage-fault outcome."""
    import io
    import subprocess

    from search.run import runner
    from search.state.experiment import Experiment

    exp = Experiment.create(str(tmp_path), "x", mode="grid", spec_yaml="name: x\n")
    frozen = subprocess.run(["chattr", "+i", exp.location], capture_output=True)
    if frozen.returncode != 0:
        pytest.skip(f"chattr +i is not available here: {frozen.stderr!r}")
    try:
        stopped = runner._record_driver(exp, None, io.StringIO())
    finally:
        subprocess.run(["chattr", "-i", exp.location], check=True)
    assert stopped is not None and stopped.storage_fault
    assert "refuses writes (operation not permitted)" in stopped.storage_fault
    assert f"robprune resume {exp.location}" in stopped.storage_fault
