"""I8: a data holder's `spe data upload` to a real S3 server stays under 100 MiB, whole process."""

import os
import subprocess
import sys

from lnds_spe import crypto

from .conftest import ACCESS_KEY, SECRET_KEY

HOLDER_PASS = "memory holder passphrase"
LIMIT_KIB = 100 * 1024
# `spe` as its console script runs it, printing the process's own peak RSS (VmHWM) as it exits.
# (A child's ru_maxrss would include the pytest process it was forked from.)
REPORT_PEAK = """
import atexit, re, runpy, sys
def report():
    status = open("/proc/self/status").read()
    print("VmHWM", re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1), file=sys.stderr)
atexit.register(report)
sys.argv = ["spe", *sys.argv[1:]]
runpy.run_module("lnds_spe", run_name="__main__")
"""


def test_upload_peak_memory_of_the_whole_process(s3_env, nanio_endpoint, spe_keys, tmp_path):
    crypto.generate_signing_key(tmp_path / "holder", HOLDER_PASS)
    source = tmp_path / "big.bin"
    with open(source, "wb") as file:
        for _ in range(96):
            file.write(os.urandom(1024 * 1024))
    env = {**os.environ, "SPE_S3_ENDPOINT": nanio_endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
           "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": "us-east-1",
           "SPE_HOLDER_PASSPHRASE": HOLDER_PASS, "SPE_STATE_DIR": str(tmp_path / "state")}
    done = subprocess.run(
        [sys.executable, "-c", REPORT_PEAK, "data", "upload", str(source), "--project", "p1",
         "--dataset", "big", "--signing-key", str(tmp_path / "holder" / "holder.sec"),
         "--spe-key", str(spe_keys[1]), "--store", f"s3://{s3_env}"],
        env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "uploaded big" in done.stdout
    peak_kib = int(done.stderr.strip().splitlines()[-1].split()[1])
    assert peak_kib < LIMIT_KIB, f"peak RSS {peak_kib} KiB"
