"""Workload G: workspace start, click to a ready JupyterLab: SPE spawner vs a plain DockerSpawner.

Two hubs run side by side from this checkout on free loopback ports, on the same engine, proxy
and warm image: the SPE hub (jupyterhub_config.py with SPEDockerSpawner: registry policy check,
data preparation, lockdown, the project's internal network and host firewall chain) and a peer
hub whose spawner is a plain `dockerspawner.DockerSpawner` on the engine's default network
(benchmarks/plain_hub_config.py). A start is timed from the POST that starts the user's named
server to the first 200 of /user/<user>/<project>/lab through the proxy, as a browser would see
it; the server is then stopped and waited for until both the hub and the engine have forgotten
it. One warm-up start per hub (reported as cold) also checks both serve JupyterLab from the same
image; the timed starts alternate between the hubs so drift in machine load hits both alike.

The SPE hub serves two projects: a small one (a 1000-row CSV) and one whose dataset is a
Crypt4GH object of DATASET_BYTES (1 GiB at full scale), which the hub fetches, decrypts and
verifies on every start. Its goal is the plain start plus the reference library's decryption
of the same bytes (`crypt4gh.lib.decrypt`, disk to disk, timed in the same rounds) times 1.3.
Containers and the engine run outside the benchmark's process, so the machine's quietness for
this workload is judged on an idle pre-sample (`RUNS_IN_ENGINE`).

Then the SPE hub alone starts many workspaces of one project at once (32 at full scale, 4 at ci
scale), one per researcher, all POSTed together through the hub API: every one must reach a
ready JupyterLab (they share the project's network, its firewall chains and their lock); p50
and max of their click-to-ready times are reported.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import requests

from benchmarks import harness
from lnds_spe.config import setting
from lnds_spe.hub.firewall import remove_firewall, remove_hub_guard
from lnds_spe.hub.lockdown import network_name
from tests.support.hubs import (
    ROOT,
    HubError,
    HubProcess,
    demo_accounts,
    engine_socket,
    free_port,
    require_tools,
)

ID = "G"
TITLE = "Workspace start, click to ready JupyterLab: SPE spawner vs plain DockerSpawner"
RUNS_IN_ENGINE = True
# starts vary by seconds: at full scale as many as every other workload repeats its calls
STARTS = {"ci": 2, "full": harness.REPEATS["full"]}
DATASET_BYTES = {"ci": 32 * 1024 * 1024, "full": 1024 * 1024 * 1024}
BIG = "SPEDockerSpawner, {size} Crypt4GH dataset"
REFERENCE = "crypt4gh lib decrypt"
CONCURRENT = {"ci": 4, "full": 32}  # workspaces of one project started at once
TARGET_SLOWDOWN = 1.3
USER = "gbench"
READY_TIMEOUT_S = 180.0
CONCURRENT_READY_TIMEOUT_S = 600.0  # 32 JupyterLabs starting together on 2 cores
GONE_TIMEOUT_S = 120.0
POLL_S = 0.1
_APP_VERSION = re.compile(r'"appVersion"\s*:\s*"([^"]+)"')


@dataclass
class Contender:
    """One hub under test, the server it starts and how it is asked to start it."""

    impl: str
    hub: HubProcess
    prefix: str
    project: str
    options: dict

    def container(self, user: str = USER) -> str:
        """The name both spawners give a user's workspace container (same name template)."""
        return f"{self.prefix}-{user}--{self.project}"


def workspace_image() -> str:
    """The workspace image both hubs start (the SPE default unless SPE_WORKSPACE_IMAGE is set)."""
    return setting("SPE_WORKSPACE_IMAGE")


def engine_client():
    """A docker-py client on the engine's Docker-compatible socket."""
    import docker

    return docker.DockerClient(base_url=f"unix://{engine_socket()}", timeout=120)


def check_prerequisites(client, image: str) -> str:
    """HubError naming what is missing (engine, image, proxy, iptables); the image's id."""
    import docker

    require_tools("configurable-http-proxy", "iptables")
    try:
        client.version()
    except docker.errors.DockerException as error:
        raise HubError(f"the container engine does not answer ({error}): "
                       "run scripts/engine-setup.sh") from None
    try:
        return client.images.get(image).id
    except docker.errors.ImageNotFound:
        raise HubError(f"workspace image {image} is missing: run scripts/build-images.sh") from None


def default_network(client) -> tuple[str, str]:
    """The engine's default network (Podman: podman, Docker: bridge) and its IPv4 gateway."""
    import docker

    for name in ("podman", "bridge"):
        try:
            network = client.networks.get(name)
        except docker.errors.NotFound:
            continue
        for config in network.attrs.get("IPAM", {}).get("Config") or []:
            if config.get("Gateway") and ":" not in config["Gateway"]:
                return network.name, config["Gateway"]
    raise HubError("the engine has no default network with an IPv4 gateway (podman or bridge)")


def concurrent_users(count: int) -> list[str]:
    """The researchers whose workspaces of the project start at once."""
    return [f"{USER}c{i:02d}" for i in range(count)]


def size_label(size: int) -> str:
    """A byte count as MiB or GiB for row labels."""
    return f"{size / 2**30:g} GiB" if size >= 2**30 else f"{size / 2**20:g} MiB"


def seed_registry(url: str, state_dir: Path, projects: dict[str, Path], image: str,
                  researchers: list[str], passphrase: str) -> None:
    """The SPE side's projects (slug → the folder of its one dataset), each with the researchers
    and the image allowed; every dataset is uploaded encrypted for the hub's new key pair."""
    from lnds_spe.crypto import PUBLIC_KEY_NAME, generate_keypair, load_public_key
    from lnds_spe.ingress import Recipients, upload_dataset
    from lnds_spe.projects import open_registry
    from lnds_spe.storage import LocalStore

    generate_keypair(state_dir / "keys", passphrase)
    recipients = Recipients(load_public_key(state_dir / "keys" / PUBLIC_KEY_NAME))
    registry = open_registry(url)
    today = date.today()
    for slug, folder in projects.items():
        registry.create_project(slug, "Benchmark G", today - timedelta(days=1),
                                today + timedelta(days=30), actor="benchmark-g",
                                allowed_images=(image,))
        for user in researchers:
            registry.add_member(slug, user, "researcher", actor="benchmark-g")
        upload_dataset(registry, folder, slug, folder.name, store=LocalStore(state_dir / "store"),
                       recipients=recipients, actor="benchmark-g")


def small_dataset(folder: Path) -> Path:
    """The small project's dataset: a 1000-row CSV."""
    folder.mkdir(parents=True)
    (folder / "visits.csv").write_text("id,age\n" + "".join(f"{i},{20 + i % 60}\n"
                                                           for i in range(1000)))
    return folder


def big_dataset(folder: Path, size: int) -> Path:
    """The big project's dataset: one file of `size` random bytes."""
    from benchmarks.workload_f import write_random

    folder.mkdir(parents=True)
    write_random(folder / "measurements.bin", size)
    return folder


def spe_hub(workdir: Path, prefix: str, projects: dict[str, Path], image: str,
            concurrent: int) -> HubProcess:
    """The SPE hub from the checkout's jupyterhub_config.py, with its own state, registry and
    key pair (the hub decrypts every dataset at each start)."""
    registry_url = f"sqlite:///{workdir / 'spe.sqlite'}"
    researchers = [USER, *concurrent_users(concurrent)]
    passphrase = secrets.token_urlsafe(16)
    seed_registry(registry_url, workdir, projects, image, researchers, passphrase)
    passwords = demo_accounts(workdir, [*researchers, "admin"])
    port = free_port()
    env = {**os.environ,
           "DOCKER_HOST": f"unix://{engine_socket()}",
           "SPE_STATE_DIR": str(workdir),
           "SPE_DEMO_MODE": "1",  # the accounts of demo-accounts.json, one password each
           "SPE_KEY_PASSPHRASE": passphrase,
           "SPE_DATABASE_URL": registry_url,
           "SPE_HUB_BIND_URL": f"http://127.0.0.1:{port}",
           "SPE_HUB_API_PORT": str(free_port()),
           "SPE_PROXY_API_URL": f"http://127.0.0.1:{free_port()}",
           "SPE_AIRLOCK_PORT": str(free_port()),
           "SPE_CONTAINER_PREFIX": prefix,
           "SPE_WORKSPACE_IMAGE": image,
           "SPE_START_TIMEOUT": str(int(CONCURRENT_READY_TIMEOUT_S)),
           "SPE_HTTP_TIMEOUT": str(int(CONCURRENT_READY_TIMEOUT_S)),
           "PYTHONPATH": str(ROOT)}
    return HubProcess("SPE", ROOT / "jupyterhub_config.py", f"http://127.0.0.1:{port}", env,
                      workdir, passwords)


def plain_hub(workdir: Path, prefix: str, image: str, network: str, gateway: str) -> HubProcess:
    """The peer hub: plain DockerSpawner on the default network, hub API on its gateway."""
    passwords = {USER: "bench-" + secrets.token_urlsafe(12), "admin": secrets.token_urlsafe(32)}
    port, api_port = free_port(), free_port()
    env = {**os.environ,
           "DOCKER_HOST": f"unix://{engine_socket()}",
           "BENCH_HUB_STATE": str(workdir),
           "BENCH_HUB_BIND_URL": f"http://127.0.0.1:{port}",
           "BENCH_HUB_API_PORT": str(api_port),
           "BENCH_PROXY_API_URL": f"http://127.0.0.1:{free_port()}",
           "BENCH_HUB_CONNECT_URL": f"http://{gateway}:{api_port}",
           "BENCH_USER_PASSWORD": passwords[USER],
           "BENCH_ADMIN_PASSWORD": passwords["admin"],
           "BENCH_WORKSPACE_IMAGE": image,
           "BENCH_CONTAINER_PREFIX": prefix,
           "BENCH_NETWORK": network}
    return HubProcess("plain", Path(__file__).with_name("plain_hub_config.py"),
                      f"http://127.0.0.1:{port}", env, workdir, passwords)


def wait_lab_ready(contender: Contender, deadline: float, user: str = USER) -> str:
    """Poll the lab URL through the proxy until it answers 200 with JupyterLab; the page."""
    hub, project = contender.hub, contender.project
    last_check = time.monotonic()
    last = ""
    while time.monotonic() < deadline:
        try:
            answer = hub.user_get(user, f"{project}/lab")
            if answer.status_code == 200 and "jupyter-config-data" in answer.text:
                return answer.text
            last = f"{answer.status_code}"
        except requests.RequestException as error:
            last = str(error)
        if time.monotonic() - last_check > 2:  # a failed spawn leaves no server behind
            last_check = time.monotonic()
            if hub.server(user, project) is None:
                raise HubError(f"{contender.impl}: {user}/{project} stopped while starting:\n"
                               f"{hub.log_tail()}")
        time.sleep(POLL_S)
    raise HubError(f"{contender.impl}: {user}'s lab not ready by the deadline "
                   f"(last answer {last}):\n{hub.log_tail()}")


def timed_start(contender: Contender, user: str = USER,
                timeout: float = READY_TIMEOUT_S) -> tuple[float, str]:
    """Seconds from the start request to a ready JupyterLab behind the proxy, and its page."""
    hub, project = contender.hub, contender.project
    start = time.perf_counter()
    answer = hub.call(user, "POST", f"/users/{user}/servers/{project}", json=contender.options)
    if answer.status_code not in (201, 202):
        raise HubError(f"{contender.impl}: start of {user}/{project} refused: "
                       f"{answer.status_code} {answer.text}\n{hub.log_tail()}")
    page = wait_lab_ready(contender, time.monotonic() + timeout, user)
    return time.perf_counter() - start, page


def stop_until_gone(contender: Contender, client, user: str = USER) -> None:
    """Stop the server and wait until the hub has forgotten it and its container is removed."""
    import docker

    contender.hub.stop_server(user, contender.project, timeout=GONE_TIMEOUT_S)
    deadline = time.monotonic() + GONE_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            client.containers.get(contender.container(user))
        except docker.errors.NotFound:
            return
        time.sleep(0.2)
    raise HubError(f"{contender.impl}: container {contender.container(user)} still exists "
                   f"{GONE_TIMEOUT_S:.0f} s after its server stopped")


def start_and_check(contender: Contender, client) -> tuple[float, str, str]:
    """A warm-up start: its seconds, the JupyterLab version served and the container's image id."""
    seconds, page = timed_start(contender)
    image_id = client.containers.get(contender.container()).image.id
    found = _APP_VERSION.search(page)
    stop_until_gone(contender, client)
    return seconds, found.group(1) if found else "unknown", image_id


def remove_engine_objects(client, prefixes: list[str]) -> None:
    """Remove the run's containers, then volumes and networks, named by its prefixes."""
    import docker

    def ours(name: str) -> bool:
        return any(name.startswith(prefix + "-") for prefix in prefixes)

    for item in [*client.containers.list(all=True), *client.volumes.list()]:
        if ours(item.name):  # containers first: they hold the volumes and networks
            with contextlib.suppress(docker.errors.APIError):
                item.remove(force=True)
    for network in client.networks.list():
        if ours(network.name):
            with contextlib.suppress(docker.errors.APIError):
                network.remove()


def concurrent_starts(contender: Contender, client, users: list[str]) -> list[float]:
    """Start one workspace of the project per user, all at once through the hub API; each one's
    seconds to a ready JupyterLab (HubError if any fails), then stop them all."""
    for user in users:
        contender.hub.token(user)  # log everyone in first: only the starts are timed together
    gate = threading.Barrier(len(users))

    def start(user: str) -> float:
        gate.wait()
        return timed_start(contender, user, CONCURRENT_READY_TIMEOUT_S)[0]

    with ThreadPoolExecutor(max_workers=len(users)) as pool:
        seconds = list(pool.map(start, users))
        list(pool.map(lambda user: stop_until_gone(contender, client, user), users))
    return seconds


def concurrent_row(seconds: list[float]) -> dict:
    """The row of the concurrent starts: p50 as warm, max and every sample in the notes."""
    return harness.row(f"{len(seconds)} concurrent starts of one project, p50",
                       "SPEDockerSpawner", None, statistics.median(seconds),
                       starts=len(seconds), max_s=round(max(seconds), 3),
                       samples_s=[round(s, 3) for s in seconds])


def summarise(scale: str, samples: dict[str, list[float]], cold: dict[str, float],
              details: dict, big: str) -> dict:
    """Rows (p50 as warm, warm-up start as cold) and the goals: the SPE start of the small
    project at most 1.3x the plain start; of the big one at most 1.3x the plain start plus the
    reference library's decryption of the same bytes."""
    p50 = {impl: statistics.median(values) for impl, values in samples.items()}
    spe, plain, reference = p50["SPEDockerSpawner"], p50["DockerSpawner"], p50[REFERENCE]
    budget = plain + reference
    rows = [harness.row("click to ready JupyterLab, p50" if impl != REFERENCE
                        else "decrypt the big dataset, disk to disk, median", impl,
                        cold.get(impl), p50[impl], threads=1 if impl == REFERENCE else None,
                        starts=len(samples[impl]), samples_s=[round(x, 3) for x in samples[impl]],
                        **(details if impl != REFERENCE else {}))
            for impl in ("SPEDockerSpawner", big, "DockerSpawner", REFERENCE)]
    rows[0]["extra"]["slowdown_vs_plain"] = round(spe / plain, 3)
    rows[1]["extra"]["slowdown_vs_plain_plus_reference"] = round(p50[big] / budget, 3)
    goals = [harness.goal(f"SPE workspace start p50 <= {TARGET_SLOWDOWN}x plain DockerSpawner "
                          f"(ratio = plain p50 / SPE p50, target 1/{TARGET_SLOWDOWN}; "
                          f"SPE is {spe / plain:.2f}x the plain start)",
                          plain / spe, 1 / TARGET_SLOWDOWN),
             harness.goal(f"SPE start {big} p50 <= {TARGET_SLOWDOWN}x (plain DockerSpawner p50 "
                          f"+ reference decryption median) (ratio = that sum / SPE p50, target "
                          f"1/{TARGET_SLOWDOWN}; SPE is {p50[big] / budget:.2f}x the sum)",
                          budget / p50[big], 1 / TARGET_SLOWDOWN)]
    return {"workload": ID, "title": TITLE, "scale": scale, "rows": rows, "goals": goals}


def measure(contenders: list[Contender], client, starts: int, image_id: str,
            decrypt_reference: Callable[[], object]) -> tuple[dict, dict, dict]:
    """Warm-up start per contender (all must serve the same JupyterLab from image_id), then
    rounds of one timed start each and one reference decryption, in alternating order."""
    cold: dict[str, float] = {}
    served: dict[str, tuple[str, str]] = {}
    for contender in contenders:
        seconds, lab_version, served_id = start_and_check(contender, client)
        cold[contender.impl] = seconds
        served[contender.impl] = (lab_version, served_id)
        print(f"[G] warm-up {contender.impl}: {seconds:.2f} s (JupyterLab {lab_version})",
              file=sys.stderr, flush=True)
    if len(set(served.values())) != 1 or next(iter(served.values()))[1] != image_id:
        raise harness.Disagreement(f"the hubs did not both serve image {image_id}: {served}")
    cold[REFERENCE] = harness.time_once(decrypt_reference)[0]

    def timed(contender: Contender) -> float:
        seconds, _ = timed_start(contender)
        stop_until_gone(contender, client)
        return seconds

    steps = {c.impl: (lambda c=c: timed(c)) for c in contenders}
    steps[REFERENCE] = lambda: harness.time_once(decrypt_reference)[0]
    samples: dict[str, list[float]] = {impl: [] for impl in steps}
    for round_index in range(starts):
        order = list(steps) if round_index % 2 == 0 else list(steps)[::-1]
        for impl in order:
            samples[impl].append(steps[impl]())
            print(f"[G] round {round_index + 1}/{starts} {impl}: {samples[impl][-1]:.2f} s",
                  file=sys.stderr, flush=True)
    lab_version = next(iter(served.values()))[0]
    return samples, cold, {"jupyterlab": lab_version, "image_id": image_id[:19]}


def decrypted_starts(registry_url: str, slug: str) -> int:
    """How many times the hub decrypted the project's dataset (its audit events)."""
    from lnds_spe.projects import open_registry

    events = open_registry(registry_url).audit.query(project=slug)
    return sum(1 for e in events if e.action == "dataset.decrypt" and e.outcome == "ok")


def run(scale: str, threads: int) -> dict:
    """Time workspace starts on the SPE hub (a small and a big encrypted dataset) and on a
    plain-DockerSpawner hub, with the reference decryption of the big dataset (threads: unused)."""
    from crypt4gh import sodium

    from benchmarks.workload_f import reference_decrypt, reference_encrypt

    if scale not in STARTS:
        raise ValueError(f"scale must be one of {sorted(STARTS)}, not {scale!r}")
    image = workspace_image()
    client = engine_client()
    image_id = check_prerequisites(client, image)
    network, gateway = default_network(client)
    tag = uuid.uuid4().hex[:6]
    slug, big_slug = f"gbench{tag}", f"gbench{tag}big"
    prefixes = [f"gspe{tag}", f"gplain{tag}"]
    big = BIG.format(size=size_label(DATASET_BYTES[scale]))
    workdir = Path(tempfile.mkdtemp(prefix="spe-bench-g-"))
    contenders: list[Contender] = []
    try:
        (workdir / "spe").mkdir()
        (workdir / "plain").mkdir()
        sources = workdir / "sources"
        big_folder = big_dataset(sources / "measurements", DATASET_BYTES[scale])
        reference_key = os.urandom(32)
        reference_object = workdir / "reference.c4gh"
        reference_encrypt(big_folder / "measurements.bin", reference_object,
                          sodium.derive_pk(reference_key))
        spe = spe_hub(workdir / "spe", prefixes[0],
                      {slug: small_dataset(sources / "visits"), big_slug: big_folder}, image,
                      CONCURRENT[scale])
        shutil.rmtree(sources)
        contenders = [
            Contender("SPEDockerSpawner", spe, prefixes[0], slug,
                      {"project": slug, "image": image}),
            Contender(big, spe, prefixes[0], big_slug, {"project": big_slug, "image": image}),
            Contender("DockerSpawner", plain_hub(workdir / "plain", prefixes[1], image, network,
                                                 gateway),
                      prefixes[1], slug, {}),
        ]
        for hub in (spe, contenders[2].hub):
            hub.launch()
        for hub in (spe, contenders[2].hub):
            hub.wait_up()
        decrypted = workdir / "reference.plain"
        samples, cold, details = measure(
            contenders, client, STARTS[scale], image_id,
            lambda: reference_decrypt(reference_object, decrypted, reference_key))
        if decrypted.stat().st_size != DATASET_BYTES[scale]:
            raise harness.Disagreement(f"the reference decrypted {decrypted.stat().st_size} "
                                       f"bytes, not {DATASET_BYTES[scale]}")
        decrypts = decrypted_starts(spe.env["SPE_DATABASE_URL"], big_slug)
        if decrypts != STARTS[scale] + 1:
            raise harness.Disagreement(f"the SPE hub decrypted the big dataset {decrypts} times "
                                       f"in {STARTS[scale] + 1} starts")
        together = concurrent_starts(contenders[0], client, concurrent_users(CONCURRENT[scale]))
        print(f"[G] {len(together)} concurrent starts: p50 {statistics.median(together):.2f} s, "
              f"max {max(together):.2f} s", file=sys.stderr, flush=True)
    finally:
        for hub in {id(c.hub): c.hub for c in contenders}.values():
            hub.stop_all_servers()
            hub.stop()
        remove_engine_objects(client, prefixes)
        for project in (slug, big_slug):
            remove_firewall(network_name(prefixes[0], project))
        remove_hub_guard(prefixes[0])
        shutil.rmtree(workdir, ignore_errors=True)
        client.close()
    details["plain_network"] = network
    summary = summarise(scale, samples, cold, details, big)
    summary["rows"].append(concurrent_row(together))
    return summary
