"""LC-quota, pure part: quota sizes and the outputs-over-quota reason."""

from dataclasses import replace
from datetime import date

import pytest

from lnds_spe import policy
from lnds_spe.errors import SPEError

PROJECT = policy.ProjectInfo("cohort", "Cohort", "", date(2026, 1, 1), date(2026, 12, 31),
                             "active", 1.0, "2G", 512, ("img",), home_quota="64M",
                             outputs_quota="16M")


@pytest.mark.parametrize("quota", ["16M", "5G", "4096G", "16384K"])
def test_quotas_from_16M_to_4096G_are_accepted(quota):
    assert policy.check_quota(quota, "home") == quota


@pytest.mark.parametrize("quota", ["", "5", "0G", "-1G", "15M", "4097G", "5T", "1.5G", "05G"])
def test_other_quotas_are_refused_naming_the_value(quota):
    with pytest.raises(SPEError, match=f"invalid outputs quota {quota!r}: use a number"):
        policy.check_limits(1.0, "2G", 512, "5G", quota)


def test_outputs_at_their_quota_are_fine_and_one_byte_over_is_not():
    assert policy.outputs_over_quota(PROJECT, 16 * 1024**2) is None
    reason = policy.outputs_over_quota(PROJECT, 16 * 1024**2 + 1)
    assert reason.startswith("the outputs of project cohort hold 16.0 MiB, over their quota of "
                             "16M: ask a project administrator to raise it")
    assert policy.outputs_over_quota(replace(PROJECT, outputs_quota="1G"), 10**8) is None
