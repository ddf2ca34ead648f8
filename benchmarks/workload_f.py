"""Workload F: encrypted upload and fetch vs the reference `crypt4gh` library, disk to disk.

Ours: upload = Crypt4GH encryption + plaintext sha256 (the manifest) + the object store; fetch =
get + decryption + verification (size and sha256) + writing the file. Both run against the local
directory store (the embedded default) and a real S3 server (nanio on loopback, same machine).
The peer is `crypt4gh.lib.encrypt` / `lib.decrypt` from file to file, with no hashing at all.
Peak RSS of each path is measured in a fresh subprocess that runs only that path once.
Our local upload fsyncs its object before the rename (durability); the reference leaves its
output in the page cache, so the kernel writes it back later. Each timed group starts after
`os.sync()`, so nobody's deferred writeback lands in another path's timings.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

ID = "F"
TITLE = "Crypt4GH upload (encrypt + manifest + store) and fetch (get + decrypt + verify)"
SIZES = {"ci": 64 * 1024 * 1024, "full": 2 * 1024 * 1024 * 1024}
RSS_LIMIT_MIB = 100.0
_NANIO_KEYS = {"NANIO_ACCESS_KEY": "bench-access", "NANIO_SECRET_KEY": "bench-secret-0123456789"}


def _write_random(path: Path, size: int) -> None:
    """A file of `size` random bytes, written in 8 MiB pieces."""
    with open(path, "wb") as out:
        left = size
        while left:
            n = min(left, 8 * 1024 * 1024)
            out.write(os.urandom(n))
            left -= n


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Cold and warm-median times of `fn`, starting with no dirty pages left by earlier paths."""
    from benchmarks import harness

    os.sync()
    return harness.time_cold_warm(fn)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_nanio(data_dir: Path) -> tuple[subprocess.Popen, str]:
    """A nanio S3 server on a free loopback port, storing under `data_dir`."""
    command = Path(sys.executable).parent / "nanio"
    port = _free_port()
    process = subprocess.Popen(
        [str(command if command.exists() else "nanio"), "serve", "--host", "127.0.0.1",
         "--port", str(port), "--data-dir", str(data_dir), "--log-level", "warning",
         "--no-access-log"], env={**os.environ, **_NANIO_KEYS},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("nanio did not start: is the dev extra (nanio) installed?")


def _s3_environment(endpoint: str) -> dict[str, str]:
    return {"SPE_S3_ENDPOINT": endpoint, "AWS_ACCESS_KEY_ID": _NANIO_KEYS["NANIO_ACCESS_KEY"],
            "AWS_SECRET_ACCESS_KEY": _NANIO_KEYS["NANIO_SECRET_KEY"],
            "AWS_DEFAULT_REGION": "us-east-1"}


# The measured operations (also run alone in a subprocess for peak RSS)

def ours_upload(source: Path, store_url: str, key: str, public_key: bytes,
                manifest_path: Path) -> dict:
    """Encrypt into the store and write the MAC-ed manifest; the manifest."""
    from lnds_spe import crypto, ingress
    from lnds_spe.storage import open_store

    encrypted = ingress.encrypt_to_store(source, open_store(store_url), key,
                                         ingress.Recipients(public_key))
    manifest = {**encrypted.manifest, "project": "bench", "dataset": "f"}
    manifest["mac"] = crypto.manifest_mac(manifest, encrypted.session_key)
    manifest_path.write_text(json.dumps(manifest))
    return manifest


def ours_fetch(location: str, manifest_path: Path, secret_key: bytes, destination: Path) -> Path:
    """Get, decrypt and verify into `destination/f`; the directory made."""
    from lnds_spe import ingress

    manifest = json.loads(manifest_path.read_text())
    # what decrypt_dataset reads of a DatasetInfo; the registry (SQLAlchemy) is not measured
    info = SimpleNamespace(name="f", location=location, manifest=manifest)
    ingress.remove_tree(destination / "f")
    return ingress.decrypt_dataset(info, destination, secret_key, project="bench")


def store_put(source: Path, store_url: str, key: str) -> None:
    """The store alone: copy the plaintext into it (multipart for S3), no encryption."""
    from lnds_spe.storage import open_store

    with open(source, "rb") as file, open_store(store_url).writer(key) as sink:
        while chunk := file.read(1024 * 1024):
            sink.write(chunk)


def store_get(store_url: str, key: str, target: Path) -> None:
    """The store alone: stream an object to a file, no decryption."""
    from lnds_spe.storage import open_store

    buffer = bytearray(1024 * 1024)
    view = memoryview(buffer)
    with open_store(store_url).reader(key) as body, open(target, "wb") as out:
        while n := body.readinto(view):
            out.write(view[:n])


def reference_encrypt(source: Path, target: Path, public_key: bytes) -> None:
    from crypt4gh import lib

    with open(source, "rb") as infile, open(target, "wb") as outfile:
        lib.encrypt([(0, os.urandom(32), public_key)], infile, outfile)


def reference_decrypt(source: Path, target: Path, secret_key: bytes) -> None:
    from crypt4gh import lib

    with open(source, "rb") as infile, open(target, "wb") as outfile:
        lib.decrypt([(0, secret_key, None)], infile, outfile)


def ours_decrypt_sha256(source: Path, secret_key: bytes) -> str:
    """Our Crypt4GH reader over any Crypt4GH file (e.g. the reference's): the plaintext sha256."""
    from concurrent.futures import ThreadPoolExecutor

    from lnds_spe import crypto

    with open(source, "rb") as file, ThreadPoolExecutor(1) as pool:
        opened = crypto.read_header(file, secret_key, str(source))
        reader = crypto.DecryptingReader(file, opened.session_key, pool, str(source))
        buffer = bytearray(1024 * 1024)
        while reader.readinto(buffer):
            pass
        return reader.plain.hexdigest()


def _child_main(argv: list[str]) -> None:
    """Run one path once (arguments as JSON) and print this process's peak RSS in MiB."""
    spec = json.loads(argv[0])
    args = {k: (bytes.fromhex(v[4:]) if isinstance(v, str) and v.startswith("hex:")
                else Path(v[5:]) if isinstance(v, str) and v.startswith("path:") else v)
            for k, v in spec["args"].items()}
    import crypt4gh.lib  # noqa: F401  (imports and the S3 client count in the baseline)

    import lnds_spe.ingress  # noqa: F401
    from lnds_spe.storage import _s3_client, s3_endpoint

    if spec["s3"]:
        _s3_client(s3_endpoint())
    baseline = _own_peak_rss_mib()
    {"ours_upload": ours_upload, "ours_fetch": ours_fetch, "reference_encrypt": reference_encrypt,
     "reference_decrypt": reference_decrypt}[spec["fn"]](**args)
    print(json.dumps({"peak_rss_mib": _own_peak_rss_mib(), "baseline_mib": baseline}))


def _own_peak_rss_mib() -> float:
    """This process's peak RSS since exec (VmHWM; ru_maxrss would include the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _peak_rss_in_subprocess(fn: str, env: dict[str, str], **args: object) -> dict[str, float]:
    """Peak RSS (MiB) of a fresh Python process that runs one path once, and its baseline."""
    encoded = {k: ("hex:" + v.hex() if isinstance(v, bytes)
                   else "path:" + str(v) if isinstance(v, Path) else v) for k, v in args.items()}
    done = subprocess.run([sys.executable, "-m", "benchmarks.workload_f",
                           json.dumps({"fn": fn, "args": encoded, "s3": bool(env)})],
                          capture_output=True, text=True, env={**os.environ, **env}, check=False,
                          cwd=Path(__file__).resolve().parent.parent)
    if done.returncode != 0:
        raise RuntimeError(f"RSS subprocess for {fn} failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _rss_extra(measured: dict[str, float]) -> dict[str, float]:
    """Row notes: the subprocess's peak RSS, and how much of it the imports already took."""
    return {"subprocess_peak_rss_mib": round(measured["peak_rss_mib"], 1),
            "after_imports_mib": round(measured["baseline_mib"], 1)}


def run(scale: str, threads: int) -> dict:
    """Time our upload/fetch (local store and S3) against the reference library, same file."""
    from crypt4gh import sodium

    from benchmarks import harness  # here, not at the top: RSS subprocesses must not load numpy

    size = SIZES[scale]
    mib = size / (1024 * 1024)
    work = Path(tempfile.mkdtemp(prefix="spe-bench-f-"))
    nanio = None
    saved_env = {k: os.environ.get(k) for k in _s3_environment("")}
    try:
        source = work / "plain.bin"
        _write_random(source, size)
        expected = _sha256(source)
        secret_key = os.urandom(32)
        public_key = sodium.derive_pk(secret_key)
        nanio, endpoint = _start_nanio(work / "nanio-data")
        s3_env = _s3_environment(endpoint)
        os.environ.update(s3_env)
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        from lnds_spe.storage import S3Store

        S3Store(bucket).client.create_bucket(Bucket=bucket)
        stores = {"local dir": ((work / "store").as_uri(), (work / "store" / "f.c4gh").as_uri()),
                  "S3 (nanio)": (f"s3://{bucket}", f"s3://{bucket}/f.c4gh")}
        manifest_path = work / "manifest.json"
        ref_encrypted, ref_plain = work / "ref.c4gh", work / "ref.plain"

        # Agreement before timing: each side decrypts the other's output to the same bytes.
        reference_encrypt(source, ref_encrypted, public_key)
        reference_decrypt(ref_encrypted, ref_plain, secret_key)
        if _sha256(ref_plain) != expected:
            raise harness.Disagreement("reference round trip changed the data")
        for label, (store_url, location) in stores.items():
            manifest = ours_upload(source, store_url, "f.c4gh", public_key, manifest_path)
            if manifest["plaintext_sha256"] != expected:
                raise harness.Disagreement(f"our upload ({label}) hashed a different plaintext")
            fetched = ours_fetch(location, manifest_path, secret_key, work / "out") / "plain.bin"
            if _sha256(fetched) != expected:
                raise harness.Disagreement(f"our fetch ({label}) returned different bytes")
        reference_decrypt(work / "store" / "f.c4gh", ref_plain, secret_key)
        if _sha256(ref_plain) != expected:
            raise harness.Disagreement("the reference library cannot read our object")
        if ours_decrypt_sha256(ref_encrypted, secret_key) != expected:
            raise harness.Disagreement("our reader cannot read the reference library's output")
        s3_object = work / "s3-object.c4gh"
        store_get(stores["S3 (nanio)"][0], "f.c4gh", s3_object)
        reference_decrypt(s3_object, ref_plain, secret_key)
        if _sha256(ref_plain) != expected:
            raise harness.Disagreement("the reference library cannot read our S3 object")
        s3_object.unlink()

        rows, ratios, rss = [], {}, {}
        ref_enc = _timed(lambda: reference_encrypt(source, ref_encrypted,
                                                                   public_key))
        ref_dec = _timed(lambda: reference_decrypt(ref_encrypted, ref_plain,
                                                                   secret_key))
        rss["reference encrypt"] = _peak_rss_in_subprocess(
            "reference_encrypt", {}, source=source, target=ref_encrypted, public_key=public_key)
        rss["reference decrypt"] = _peak_rss_in_subprocess(
            "reference_decrypt", {}, source=ref_encrypted, target=ref_plain,
            secret_key=secret_key)
        for case, (cold, warm), rss_key in (("upload", ref_enc, "reference encrypt"),
                                            ("fetch", ref_dec, "reference decrypt")):
            rows.append(harness.row(f"{case}, {mib:.0f} MiB", "crypt4gh lib, disk to disk", cold,
                                    warm, threads=1, mib_per_s=round(mib / warm, 1),
                                    **_rss_extra(rss[rss_key])))
        for label, (store_url, location) in stores.items():
            up = _timed(lambda u=store_url: ours_upload(
                source, u, "f.c4gh", public_key, manifest_path))
            down = _timed(lambda loc=location: ours_fetch(
                loc, manifest_path, secret_key, work / "out"))
            env = s3_env if label.startswith("S3") else {}
            rss[f"upload {label}"] = _peak_rss_in_subprocess(
                "ours_upload", env, source=source, store_url=store_url, key="f.c4gh",
                public_key=public_key, manifest_path=manifest_path)
            rss[f"fetch {label}"] = _peak_rss_in_subprocess(
                "ours_fetch", env, location=location, manifest_path=manifest_path,
                secret_key=secret_key, destination=work / "out")
            up_s3 = up
            for case, (cold, warm), peer in (("upload", up, ref_enc), ("fetch", down, ref_dec)):
                rows.append(harness.row(f"{case}, {mib:.0f} MiB", f"lnds_spe, {label} store", cold,
                                        warm, threads=2, mib_per_s=round(mib / warm, 1),
                                        **_rss_extra(rss[f"{case} {label}"])))
                ratios[(case, label)] = peer[1] / warm
        s3_url = stores["S3 (nanio)"][0]
        raw_put = _timed(lambda: store_put(source, s3_url, "raw.bin"))
        raw_get = _timed(lambda: store_get(s3_url, "raw.bin", ref_plain))
        for case, (cold, warm) in (("upload", raw_put), ("fetch", raw_get)):
            rows.append(harness.row(f"{case}, {mib:.0f} MiB", "S3 (nanio) store alone, plaintext",
                                    cold, warm, threads=1, mib_per_s=round(mib / warm, 1)))
        goals = [harness.goal("upload via S3 (nanio) ≥ 0.8× the throughput of the store alone "
                              "(plain multipart PUT)", raw_put[1] / up_s3[1], 0.8)]
        for (case, label), ratio in ratios.items():
            goals.append(harness.goal(f"{case} via {label} store ≥ 0.8× reference throughput "
                                      "(hashing and store included)", ratio, 0.8))
        for key, value in rss.items():
            if not key.startswith("reference"):
                goals.append(harness.goal_at_most(f"peak RSS MiB, {key} ({mib:.0f} MiB file)",
                                                  value["peak_rss_mib"], RSS_LIMIT_MIB))
        return {"workload": ID, "title": TITLE, "scale": scale, "rows": rows, "goals": goals}
    finally:
        if nanio is not None:
            nanio.terminate()
            nanio.wait(timeout=10)
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    _child_main(sys.argv[1:])
