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
STARTS = {"ci": 2, "full": 5}
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


def seed_registry(url: str, state_dir: Path, slug: str, image: str,
                  researchers: list[str]) -> None:
    """The SPE side's project: the researchers, the image allowed, one small plain dataset."""
    from lnds_spe.projects import open_registry

    registry = open_registry(url)
    today = date.today()
    registry.create_project(slug, "Benchmark G", today - timedelta(days=1),
                            today + timedelta(days=30), actor="benchmark-g",
                            allowed_images=(image,))
    for user in researchers:
        registry.add_member(slug, user, "researcher", actor="benchmark-g")
    folder = state_dir / "datasets" / slug / "visits"
    folder.mkdir(parents=True)
    (folder / "visits.csv").write_text("id,age\n" + "".join(f"{i},{20 + i % 60}\n"
                                                           for i in range(1000)))
    registry.add_dataset(slug, "visits", f"file://{folder}", actor="benchmark-g")


def spe_hub(workdir: Path, prefix: str, slug: str, image: str, concurrent: int) -> HubProcess:
    """The SPE hub from the checkout's jupyterhub_config.py, with its own state and registry."""
    registry_url = f"sqlite:///{workdir / 'spe.sqlite'}"
    researchers = [USER, *concurrent_users(concurrent)]
    seed_registry(registry_url, workdir, slug, image, researchers)
    passwords = demo_accounts(workdir, [*researchers, "admin"])
    port = free_port()
    env = {**os.environ,
           "DOCKER_HOST": f"unix://{engine_socket()}",
           "SPE_STATE_DIR": str(workdir),
           "SPE_DEMO_MODE": "1",  # the accounts of demo-accounts.json, one password each
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
              details: dict) -> dict:
    """Rows (p50 as warm, warm-up start as cold) and the goal: SPE at most 1.3x the plain start."""
    p50 = {impl: statistics.median(values) for impl, values in samples.items()}
    slowdown = p50["SPEDockerSpawner"] / p50["DockerSpawner"]
    rows = [harness.row("click to ready JupyterLab, p50", impl, cold[impl], p50[impl],
                        starts=len(samples[impl]), samples_s=[round(s, 3) for s in samples[impl]],
                        **details)
            for impl in ("SPEDockerSpawner", "DockerSpawner")]
    rows[0]["extra"]["slowdown_vs_plain"] = round(slowdown, 3)
    goals = [harness.goal(f"SPE workspace start p50 <= {TARGET_SLOWDOWN}x plain DockerSpawner "
                          f"(ratio = plain p50 / SPE p50, target 1/{TARGET_SLOWDOWN}; "
                          f"SPE is {slowdown:.2f}x the plain start)",
                          p50["DockerSpawner"] / p50["SPEDockerSpawner"], 1 / TARGET_SLOWDOWN)]
    return {"workload": ID, "title": TITLE, "scale": scale, "rows": rows, "goals": goals}


def measure(contenders: list[Contender], client, starts: int,
            image_id: str) -> tuple[dict, dict, dict]:
    """Warm-up start per hub (both must serve the same JupyterLab from image_id), then
    alternating timed starts."""
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
    samples: dict[str, list[float]] = {c.impl: [] for c in contenders}
    for round_index in range(starts):
        order = contenders if round_index % 2 == 0 else contenders[::-1]
        for contender in order:
            seconds, _ = timed_start(contender)
            stop_until_gone(contender, client)
            samples[contender.impl].append(seconds)
            print(f"[G] start {round_index + 1}/{starts} {contender.impl}: {seconds:.2f} s",
                  file=sys.stderr, flush=True)
    lab_version = next(iter(served.values()))[0]
    return samples, cold, {"jupyterlab": lab_version, "image_id": image_id[:19]}


def run(scale: str, threads: int) -> dict:
    """Time workspace starts on the SPE hub and on a plain-DockerSpawner hub (threads: unused)."""
    if scale not in STARTS:
        raise ValueError(f"scale must be one of {sorted(STARTS)}, not {scale!r}")
    image = workspace_image()
    client = engine_client()
    image_id = check_prerequisites(client, image)
    network, gateway = default_network(client)
    tag = uuid.uuid4().hex[:6]
    slug = f"gbench{tag}"
    prefixes = [f"gspe{tag}", f"gplain{tag}"]
    workdir = Path(tempfile.mkdtemp(prefix="spe-bench-g-"))
    contenders: list[Contender] = []
    try:
        (workdir / "spe").mkdir()
        (workdir / "plain").mkdir()
        contenders = [
            Contender("SPEDockerSpawner", spe_hub(workdir / "spe", prefixes[0], slug, image,
                                                  CONCURRENT[scale]),
                      prefixes[0], slug, {"project": slug, "image": image}),
            Contender("DockerSpawner", plain_hub(workdir / "plain", prefixes[1], image, network,
                                                 gateway),
                      prefixes[1], slug, {}),
        ]
        for contender in contenders:
            contender.hub.launch()
        for contender in contenders:
            contender.hub.wait_up()
        samples, cold, details = measure(contenders, client, STARTS[scale], image_id)
        together = concurrent_starts(contenders[0], client, concurrent_users(CONCURRENT[scale]))
        print(f"[G] {len(together)} concurrent starts: p50 {statistics.median(together):.2f} s, "
              f"max {max(together):.2f} s", file=sys.stderr, flush=True)
    finally:
        for contender in contenders:
            contender.hub.stop_all_servers()
            contender.hub.stop()
        remove_engine_objects(client, prefixes)
        remove_firewall(network_name(prefixes[0], slug))
        remove_hub_guard(prefixes[0])
        shutil.rmtree(workdir, ignore_errors=True)
        client.close()
    details["plain_network"] = network
    summary = summarise(scale, samples, cold, details)
    summary["rows"].append(concurrent_row(together))
    return summary
