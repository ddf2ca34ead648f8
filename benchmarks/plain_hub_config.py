"""JupyterHub config of workload G's peer: a plain DockerSpawner, no SPE policy or lockdown.

Same image, engine, proxy, authenticator and Spawner timeouts as the SPE hub; the workspace
joins the engine's default network and reaches the hub API on that network's gateway (the hub
listens on all addresses, the proxy reaches it on loopback). Set by benchmarks/workload_g.py
through BENCH_* environment variables.
"""

import os

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)
STATE = os.environ["BENCH_HUB_STATE"]

c.JupyterHub.db_url = f"sqlite:///{STATE}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{STATE}/jupyterhub_cookie_secret"
c.ConfigurableHTTPProxy.pid_file = f"{STATE}/proxy.pid"
c.JupyterHub.bind_url = os.environ["BENCH_HUB_BIND_URL"]
c.JupyterHub.hub_ip = "0.0.0.0"
c.JupyterHub.hub_port = int(os.environ["BENCH_HUB_API_PORT"])
c.JupyterHub.hub_connect_ip = "127.0.0.1"
c.ConfigurableHTTPProxy.api_url = os.environ["BENCH_PROXY_API_URL"]

c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = os.environ["BENCH_USER_PASSWORD"]
c.SharedPasswordAuthenticator.admin_password = os.environ["BENCH_ADMIN_PASSWORD"]
c.Authenticator.admin_users = {"admin"}
c.Authenticator.allow_all = True

c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 0
c.JupyterHub.spawner_class = "dockerspawner.DockerSpawner"
c.DockerSpawner.image = os.environ["BENCH_WORKSPACE_IMAGE"]
c.DockerSpawner.prefix = os.environ["BENCH_CONTAINER_PREFIX"]
c.DockerSpawner.name_template = "{prefix}-{username}--{servername}"
c.DockerSpawner.remove = True  # a fresh container per start, as the SPE spawner does
c.DockerSpawner.network_name = os.environ["BENCH_NETWORK"]
c.DockerSpawner.use_internal_ip = True
c.DockerSpawner.hub_connect_url = os.environ["BENCH_HUB_CONNECT_URL"]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 120
c.Spawner.environment = {"JUPYTERHUB_ACTIVITY_INTERVAL": "60"}
