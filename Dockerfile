# The SPE hub: JupyterHub 6 + configurable-http-proxy + lnds_spe[hub] (spawners, culler, services).
#
# Built from the repository root by `scripts/build-images.sh --hub`, or by hand:
#   podman build --network=host -v /etc/ssl/certs/ca-certificates.crt:/host-ca.crt:ro \
#       --build-arg PIP_CERT=/host-ca.crt -t localhost/lnds-spe-hub:latest .
# BASE_IMAGE must provide python3 (>= 3.11) with venv, ca-certificates and tini (see
# images/base/packages.txt). The proxy runs on Debian's Node.js (18 in bookworm), so it is pinned
# to configurable-http-proxy 5.1, the last line that supports Node 18; npm is removed once used.
ARG BASE_IMAGE=localhost/spe-base:bookworm
FROM ${BASE_IMAGE}

ARG PIP_CERT
ARG PIP_CACHE_DIR

ENV VIRTUAL_ENV=/opt/spe/venv \
    PATH=/opt/spe/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    SPE_STATE_DIR=/srv/spe

RUN echo "[hub] installing nodejs, npm and iptables from Debian" \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        nodejs npm iptables curl >/dev/null \
 && echo "[hub] installing configurable-http-proxy" \
 && if [ -n "${PIP_CERT:-}" ]; then export NODE_EXTRA_CA_CERTS="${PIP_CERT}"; fi \
 && npm install -g --no-fund --no-audit --no-update-notifier "configurable-http-proxy@~5.1.0" \
 && DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq --auto-remove npm >/dev/null \
 && rm -rf /var/lib/apt/lists/* /root/.npm \
 && configurable-http-proxy --version \
 && python3 -m venv /opt/spe/venv

COPY pyproject.toml README.md /src/
RUN echo "[hub] installing the dependencies of lnds_spe[hub]" \
 && if [ -z "${PIP_CERT:-}" ]; then unset PIP_CERT; fi \
 && if [ -z "${PIP_CACHE_DIR:-}" ]; then unset PIP_CACHE_DIR; export PIP_NO_CACHE_DIR=1; fi \
 && mkdir -p /src/lnds_spe && touch /src/lnds_spe/__init__.py \
 && /opt/spe/venv/bin/pip install --progress-bar off --disable-pip-version-check "/src[hub]"

COPY lnds_spe /src/lnds_spe
COPY jupyterhub_config.py /srv/hub/jupyterhub_config.py
COPY hub /srv/hub/hub
RUN echo "[hub] installing lnds_spe from this repository's source" \
 && /opt/spe/venv/bin/pip install --no-deps --no-cache-dir --force-reinstall --progress-bar off \
        --disable-pip-version-check /src \
 && rm -rf /src

WORKDIR /srv/hub
EXPOSE 8000 8081
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["jupyterhub", "-f", "/srv/hub/jupyterhub_config.py"]
