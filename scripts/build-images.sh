#!/usr/bin/env bash
# Build the container images of the SPE, idempotently: the base image (from Debian packages with
# mmdebstrap, where no registry can be pulled from), the workspace image and, with --hub, the hub
# image. An image whose inputs did not change since it was built is skipped in a second or two.
# The workspace image holds the JupyterLab airlock extension (extensions/lnds-spe-airlock), built
# here from source into a wheel with a prebuilt labextension (Node.js on this machine only, never
# in the image; ~2 min cold, then cached by the hash of its sources).
#
#   scripts/build-images.sh [--hub] [--force]
#
# Settings (environment): SPE_BASE_IMAGE (default localhost/spe-base:bookworm; if it names an
# image that exists or can be pulled, mmdebstrap is not used), SPE_WORKSPACE_IMAGE (default
# in lnds_spe/defaults.env), SPE_HUB_IMAGE (default localhost/lnds-spe-hub:latest), SPE_BUILD_CACHE
# (pip cache shared by builds, default /var/cache/spe-build), SPE_CA_BUNDLE (CA bundle given to
# pip inside builds, default the system bundle if present).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/scripts/defaults.sh"
BASE_IMAGE="${SPE_BASE_IMAGE:-localhost/spe-base:bookworm}"
WORKSPACE_IMAGE="$(spe_setting SPE_WORKSPACE_IMAGE)"
HUB_IMAGE="${SPE_HUB_IMAGE:-localhost/lnds-spe-hub:latest}"
BUILD_CACHE="${SPE_BUILD_CACHE:-/var/cache/spe-build}"
CA_BUNDLE="${SPE_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
HASH_LABEL="org.lnds-spe.inputs-sha256"
EXTENSION="$ROOT/extensions/lnds-spe-airlock"
PYTHON="${SPE_PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3

BUILD_HUB=0
FORCE=0
for arg in "$@"; do
    case "$arg" in
        --hub) BUILD_HUB=1 ;;
        --force) FORCE=1 ;;
        *) echo "usage: $0 [--hub] [--force]" >&2; exit 2 ;;
    esac
done

say() { echo "[build-images] $*" >&2; }

if command -v podman >/dev/null 2>&1; then
    ENGINE=podman
elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    ENGINE=docker
else
    say "no container engine found: run scripts/engine-setup.sh first"
    exit 1
fi

image_exists() { "$ENGINE" image inspect "$1" >/dev/null 2>&1; }
image_label() { "$ENGINE" image inspect --format "{{ index .Config.Labels \"$HASH_LABEL\" }}" "$1" 2>/dev/null || true; }

build_base() {
    # The base image: Debian bookworm with python3, venv, tini (images/base/packages.txt).
    if image_exists "$BASE_IMAGE"; then
        say "base image $BASE_IMAGE exists, skipping"
        return
    fi
    if [[ "$BASE_IMAGE" != localhost/* ]]; then
        say "pulling base image $BASE_IMAGE"
        "$ENGINE" pull "$BASE_IMAGE"
        return
    fi
    if ! command -v mmdebstrap >/dev/null 2>&1; then
        say "installing mmdebstrap with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >&2
    fi
    local packages tmp
    packages="$(grep -v -e '^#' -e '^$' "$ROOT/images/base/packages.txt" | paste -sd, -)"
    tmp="$(mktemp -d)"
    say "building base image $BASE_IMAGE from Debian packages ($packages) with mmdebstrap (~30 s)"
    mmdebstrap --variant=apt --include="$packages" \
        --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' \
        bookworm "$tmp/base.tar" >&2
    say "importing the base image"
    "$ENGINE" import --change 'CMD ["/bin/bash"]' "$tmp/base.tar" "$BASE_IMAGE" >/dev/null
    rm -rf "$tmp"
    say "base image $BASE_IMAGE ready"
}

stage_context() {
    # Copy into $1 only what the image builds read: the package source and the image files.
    local dest="$1"
    mkdir -p "$dest"
    cp "$ROOT/pyproject.toml" "$dest/"
    # pyproject names README.md as the package's long description; a fixed stub keeps README
    # edits from invalidating the slow dependency layer.
    echo "LNDS SPE" >"$dest/README.md"
    local -a parts=()
    for part in lnds_spe images hub Dockerfile jupyterhub_config.py; do
        if [ -e "$ROOT/$part" ]; then parts+=("$part"); fi
    done
    tar -C "$ROOT" --exclude='__pycache__' --exclude='*.pyc' -cf - "${parts[@]}" | tar -C "$dest" -xf -
}

extension_sources_hash() {
    # A digest of the extension's sources (what its wheel is built from), build outputs excluded.
    (cd "$EXTENSION" && find . \( -name node_modules -o -name lib -o -name labextension -o -name dist \
        -o -name coverage -o -name .yarn -o -name __pycache__ \) -prune -o -type f \
        ! -name _version.py ! -name '*.tsbuildinfo' -print0 | sort -z | xargs -0 sha256sum) \
        | sha256sum | cut -d' ' -f1
}

build_extension_wheel() {
    # The airlock lab extension's wheel (prebuilt labextension inside) into $1/wheels, rebuilt only
    # when its sources changed (cached under $BUILD_CACHE/extension/<hash>).
    local dest="$1/wheels" hash cache
    hash="$(extension_sources_hash)"
    cache="$BUILD_CACHE/extension/$hash"
    mkdir -p "$dest"
    if ! compgen -G "$cache/*.whl" >/dev/null; then
        if ! command -v node >/dev/null 2>&1; then
            say "Node.js is missing: it builds the JupyterLab extension (./run setup installs it)"
            exit 1
        fi
        say "building the airlock lab extension from source (jlpm install + build, ~2 min cold)"
        local start=$SECONDS tmp
        tmp="$(mktemp -d)"
        # A stale labextension would be reused silently by the builder: start clean.
        rm -rf "$EXTENSION/lnds_spe_airlock/labextension" "$EXTENSION/lib" "$EXTENSION/tsconfig.tsbuildinfo"
        NODE_EXTRA_CA_CERTS="${NODE_EXTRA_CA_CERTS:-$CA_BUNDLE}" \
            "$PYTHON" -m pip wheel --no-deps --disable-pip-version-check --progress-bar off \
            -w "$tmp" "$EXTENSION" >&2
        mkdir -p "$cache"
        mv "$tmp"/lnds_spe_airlock-*.whl "$cache/"
        rm -rf "$tmp"
        say "airlock lab extension built in $((SECONDS - start)) s"
    else
        say "airlock lab extension wheel up to date ($(basename "$cache"/*.whl))"
    fi
    cp "$cache"/*.whl "$dest/"
}

inputs_hash() {
    # A digest of the parts $2... of the staged context $1 plus the base image id: a build's input.
    local ctx="$1"
    shift
    {
        (cd "$ctx" && find "$@" -type f -print0 2>/dev/null | sort -z | xargs -0 sha256sum)
        "$ENGINE" image inspect --format '{{.Id}}' "$BASE_IMAGE"
    } | sha256sum | cut -d' ' -f1
}

build_image() {
    # Build image $1 from Dockerfile $2 (in the staged context $3, reading parts $4...) unless
    # it is up to date.
    local image="$1" dockerfile="$2" ctx="$3" want have
    shift 3
    want="$(inputs_hash "$ctx" "$@")"
    have="$(image_label "$image")"
    if [ "$FORCE" -eq 0 ] && [ "$have" = "$want" ]; then
        say "$image is up to date, skipping"
        return
    fi
    local -a extra=()
    if [ "$ENGINE" = podman ]; then
        mkdir -p "$BUILD_CACHE/pip"
        extra+=(-v "$BUILD_CACHE/pip:/pip-cache" --build-arg PIP_CACHE_DIR=/pip-cache)
        if [ -f "$CA_BUNDLE" ]; then
            extra+=(-v "$CA_BUNDLE:/host-ca.crt:ro" --build-arg PIP_CERT=/host-ca.crt)
        fi
    fi
    say "building $image from $dockerfile (first build takes a few minutes; layers are cached)"
    local start=$SECONDS
    "$ENGINE" build --network=host "${extra[@]}" \
        --build-arg BASE_IMAGE="$BASE_IMAGE" --label "$HASH_LABEL=$want" \
        -f "$ctx/$dockerfile" -t "$image" "$ctx" >&2
    say "$image built in $((SECONDS - start)) s"
}

check_hub_image() {
    # The hub image's entry points answer: JupyterHub, the spe CLI and the proxy on its Node.js.
    say "checking $HUB_IMAGE (jupyterhub --version, spe --help, configurable-http-proxy --version)"
    "$ENGINE" run --rm --network=none "$HUB_IMAGE" sh -c \
        'jupyterhub --version && spe --help >/dev/null && configurable-http-proxy --version' >&2
}

build_base
CTX="$(mktemp -d)"
trap 'rm -rf "$CTX"' EXIT
stage_context "$CTX"
build_extension_wheel "$CTX"
build_image "$WORKSPACE_IMAGE" images/workspace/Dockerfile "$CTX" \
    pyproject.toml README.md lnds_spe images/workspace wheels
if [ "$BUILD_HUB" -eq 1 ]; then
    build_image "$HUB_IMAGE" Dockerfile "$CTX" \
        pyproject.toml README.md lnds_spe Dockerfile jupyterhub_config.py hub
    check_hub_image
fi
say "done"
