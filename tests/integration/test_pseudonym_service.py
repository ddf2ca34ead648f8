"""The token service for real: `spe pseudo` over HTTP and in process, 1,000 identifiers through
every method, blind mode and re-identification; then no identifier or pseudonym is in any file the
service side wrote. Bad input gets one clear error and writes nothing."""

import csv
import json
import os
import random
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

SPE = [sys.executable, "-m", "lnds_spe"]
CONFIGS = [("non-reversible", "always-same", "alphanumeric"),
           ("non-reversible", "always-different", "numeric"),
           ("reversible", "always-same", "numeric"),
           ("reversible", "always-different", "alphabetic")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ipms(tmp_path_factory):
    """A state dir with a master key, three callers, and the service running on loopback."""
    root = tmp_path_factory.mktemp("ipms")
    service_side = root / "service"
    env = {**os.environ, "SPE_STATE_DIR": str(service_side), "SPE_IPMS_SERVICE": ""}
    env.pop("SPE_IPMS_BEARER", None)

    def spe(*args, bearer=None, check=True):
        run_env = {**env, **({"SPE_IPMS_BEARER": bearer} if bearer else {})}
        done = subprocess.run([*SPE, *args], env=run_env, capture_output=True, text=True, timeout=300)
        if check:
            assert done.returncode == 0, done.stderr
        return done

    spe("pseudo", "init")
    bearers = {name: spe("pseudo", "caller", name, "--role", role).stdout.strip()
               for name, role in [("lnds", "issuer"), ("igss", "holder"), ("incert", "reidentifier")]}
    port = free_port()
    log = (service_side / "service.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "lnds_spe.services.pseudonym"], stdout=log, stderr=log,
                            env={**env, "SPE_IPMS_URL": f"http://127.0.0.1:{port}"})
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{url}/api/openapi.json", timeout=1).read()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail(f"the token service did not start: {(service_side / 'service.log').read_text()}")
    holder = root / "holder"
    holder.mkdir()
    yield {"spe": spe, "bearers": bearers, "url": url, "service_side": service_side, "holder": holder}
    proc.terminate()
    proc.wait(10)
    log.close()


def write_ids(path: Path, ids: list[str]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["person", "income"])
        writer.writerows([i, str(n)] for n, i in enumerate(ids))


def column(path: Path) -> list[str]:
    with path.open(newline="") as fh:
        return [row["person"] for row in csv.DictReader(fh)]


def test_every_path_then_no_identifier_anywhere_on_the_service_side(ipms):
    spe, bearers, holder = ipms["spe"], ipms["bearers"], ipms["holder"]
    rng = random.Random(15)
    ids = sorted({f"{rng.randrange(10**12, 10**13)}" for _ in range(1000)})
    assert len(ids) == 1000
    source = holder / "people.csv"
    write_ids(source, ids)
    made: list[str] = []
    for method, treatment, fmt in CONFIGS:
        token = spe("pseudo", "token", "--project", "cross-border", "--holder", "igss", "--method", method,
                    "--treatment", treatment, "--format", fmt, "--service", ipms["url"],
                    bearer=bearers["lnds"]).stdout.strip()
        for via in (["--service", ipms["url"]], []):
            tag = f"{method}-{treatment}-{'http' if via else 'local'}"
            out = holder / f"pseudo-{tag}.csv"
            done = spe("pseudo", "apply", str(source), str(out), "-c", "person", "--token", token,
                       "--project", "cross-border", *via, bearer=bearers["igss"])
            assert "1000 pseudonyms" in done.stdout
            pseudonyms = column(out)
            assert len(pseudonyms) == 1000 and set(pseudonyms).isdisjoint(ids)
            made += pseudonyms
            if method == "reversible":
                back = holder / f"back-{tag}.csv"
                spe("pseudo", "reverse", str(out), str(back), "-c", "person", "--token", token, *via,
                    bearer=bearers["incert"])
                assert column(back) == ids
        if (method, treatment) == ("non-reversible", "always-same"):
            blind_out = holder / "pseudo-blind.csv"
            spe("pseudo", "apply", str(source), str(blind_out), "-c", "person", "--token", token, "--blind",
                "--service", ipms["url"], bearer=bearers["igss"])
            blind = column(blind_out)
            assert len(set(blind)) == 1000 and set(blind).isdisjoint(ids)
            again = holder / "pseudo-blind-again.csv"
            spe("pseudo", "apply", str(source), str(again), "-c", "person", "--token", token, "--blind",
                bearer=bearers["igss"])
            assert column(again) == blind  # same pseudonyms whatever the random blinds
            made += blind
    audit_lines = (ipms["service_side"] / "ipms" / "audit.jsonl").read_text().splitlines()
    audit = [json.loads(line) for line in audit_lines]
    assert {e["action"] for e in audit} == {"token.issue", "pseudonym.reidentify"}
    assert sum(e["count"] for e in audit if e["action"] == "pseudonym.reidentify") == 4000
    files = [p for p in ipms["service_side"].rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"master.key", "callers.json", "audit.jsonl", "service.log"}
    needles = [i.encode() for i in ids] + [p.encode() for p in made]
    for path in files:
        data = path.read_bytes()
        found = [n for n in needles if n in data]
        assert not found, f"{path} holds {len(found)} identifiers or pseudonyms"


def refused(ipms, *args, bearer: str) -> str:
    done = ipms["spe"]("pseudo", *args, bearer=bearer, check=False)
    assert done.returncode == 2, (done.stdout, done.stderr)
    message = done.stderr.strip()  # a transient progress bar may leave a blank line
    assert message.startswith("error: ") and len(message.splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
    leftovers = [p.name for p in ipms["holder"].iterdir() if p.name.startswith(("refused", ".refused"))]
    assert leftovers == [], leftovers
    return message


@pytest.mark.parametrize("via", ["http", "local"])
def test_bad_input_one_clear_error_and_nothing_written(ipms, via):
    spe, bearers, holder = ipms["spe"], ipms["bearers"], ipms["holder"]
    service = ["--service", ipms["url"]] if via == "http" else []

    def token(project, method="reversible", treatment="always-same", fmt="numeric"):
        return spe("pseudo", "token", "--project", project, "--holder", "igss", "--method", method,
                   "--treatment", treatment, "--format", fmt, bearer=bearers["lnds"]).stdout.strip()

    good, other = token("cross-border"), token("another-project")
    target = str(holder / "refused.csv")
    empty = holder / "empty.csv"
    empty.write_text("person,income\n")
    assert "has no values" in refused(ipms, "apply", str(empty), target, "-c", "person", "--token", good,
                                      *service, bearer=bearers["igss"])
    assert "no column 'nin'" in refused(ipms, "apply", str(empty), target, "-c", "nin", "--token", good,
                                        *service, bearer=bearers["igss"])
    bad = holder / "bad.csv"
    write_ids(bad, [f"{1985010100000 + n}" for n in range(7000)] + ["19850101X0001"])
    message = refused(ipms, "apply", str(bad), target, "-c", "person", "--token", good, *service,
                      bearer=bearers["igss"])
    assert "identifier 7001 has characters outside the numeric format" in message
    assert "19850101X0001" not in message
    assert "not issued by this service" in refused(ipms, "apply", str(bad), target, "-c", "person", "--token",
                                                   good[:-4] + "AAAA", *service, bearer=bearers["igss"])
    assert "another project" in refused(ipms, "apply", str(bad), target, "-c", "person", "--token", other,
                                        "--project", "cross-border", *service, bearer=bearers["igss"])
    ok = holder / f"ok-{via}.csv"
    write_ids(ok, ["1985010112345", "1990123154321"])
    pseudo = holder / f"ok-pseudo-{via}.csv"
    spe("pseudo", "apply", str(ok), str(pseudo), "-c", "person", "--token", good, *service,
        bearer=bearers["igss"])
    assert "reidentifier role" in refused(ipms, "reverse", str(pseudo), target, "-c", "person", "--token",
                                          good, *service, bearer=bearers["igss"])
    assert "unknown bearer" in refused(ipms, "reverse", str(pseudo), target, "-c", "person", "--token", good,
                                       *service, bearer="not-a-caller")
    hmac_token = token("cross-border", "non-reversible")
    assert "non-reversible" in refused(ipms, "reverse", str(pseudo), target, "-c", "person", "--token",
                                       hmac_token, *service, bearer=bearers["incert"])


def test_openapi_schema_and_status_codes(ipms):
    schema = json.loads(urllib.request.urlopen(f"{ipms['url']}/api/openapi.json").read())
    paths = {"/api/tokens", "/api/pseudonymise", "/api/oprf/evaluate", "/api/reidentify"}
    assert paths <= set(schema["paths"])
    request = urllib.request.Request(f"{ipms['url']}/api/pseudonymise", method="POST",
                                     data=json.dumps({"token": "x", "values": ["1"]}).encode(),
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request)
    assert err.value.code == 401
