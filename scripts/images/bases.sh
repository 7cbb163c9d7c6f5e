#!/usr/bin/env bash
# Local base images for a machine with no container registry (Debian's packages and PyPI
# only), named as what they are:
#
#   localhost/driftloop-local/python:3.11-bookworm   debootstrap --variant=minbase bookworm
#                                                    + python3, python3-venv, CA certificates
#   localhost/driftloop-local/uv:0.13.9              uv from its PyPI wheel, in a scratch image
#   localhost/driftloop-local/airflow-standin:3.3.2  NOT the official apache/airflow image: the
#                                                    local python base with user airflow (uid
#                                                    50000), a recent pip, AIRFLOW_HOME
#   localhost/driftloop-local/postgres-standin:15    NOT the official postgres:17 image: Debian's
#                                                    PostgreSQL 15 behind an entrypoint that
#                                                    keeps the official image's contract
#                                                    (POSTGRES_USER/PASSWORD/DB, PGDATA,
#                                                    /docker-entrypoint-initdb.d/*.sql, uid 999),
#                                                    for `make test-images`' kube play
#
# The machine's extra CA certificates (/usr/local/share/ca-certificates: outbound HTTPS may be
# re-signed) go into the python base, and SSL_CERT_FILE/PIP_CERT point pip and uv at them.
# Each image is built once and kept (the engine's store is the cache).
set -euo pipefail
# shellcheck disable=SC1091
source "$(dirname "$0")/engine.sh"
pick_engine

PYTHON_BASE=localhost/driftloop-local/python:3.11-bookworm
UV_VERSION=0.13.9
UV_BASE=localhost/driftloop-local/uv:$UV_VERSION
AIRFLOW_STANDIN=localhost/driftloop-local/airflow-standin:3.3.2
POSTGRES_STANDIN=localhost/driftloop-local/postgres-standin:15
WORK="$TOOLS/images"
mkdir -p "$WORK"

if ! have_image "$PYTHON_BASE"; then
  command -v debootstrap >/dev/null 2>&1 || die "debootstrap is not installed"
  say "building $PYTHON_BASE with debootstrap (about a minute; log: $WORK/debootstrap.log)"
  rootfs="$WORK/rootfs"
  rm -rf "$rootfs"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$rootfs" http://deb.debian.org/debian > "$WORK/debootstrap.log" 2>&1 \
    || die "debootstrap failed; see $WORK/debootstrap.log"
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
  fi
  chroot "$rootfs" update-ca-certificates >/dev/null
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | "$ENGINE" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' - "$PYTHON_BASE" >/dev/null
  rm -rf "$rootfs"
fi

if ! have_image "$UV_BASE"; then
  say "building $UV_BASE from uv's PyPI wheel"
  rm -rf "$WORK/uv" && mkdir -p "$WORK/uv"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$WORK/uv" \
    "uv==$UV_VERSION" || die "cannot download uv $UV_VERSION from PyPI"
  python3 - "$WORK/uv" <<'PY'
import sys, zipfile, pathlib
where = pathlib.Path(sys.argv[1])
(wheel,) = where.glob("uv-*.whl")
with zipfile.ZipFile(wheel) as z:
    (name,) = [n for n in z.namelist() if n.endswith("/scripts/uv")]
    (where / "uv").write_bytes(z.read(name))
(where / "uv").chmod(0o755)
PY
  printf 'FROM scratch\nCOPY uv /uv\n' > "$WORK/uv/Containerfile"
  "$ENGINE" build --quiet -f "$WORK/uv/Containerfile" -t "$UV_BASE" "$WORK/uv" >/dev/null
fi

if ! have_image "$AIRFLOW_STANDIN"; then
  say "building $AIRFLOW_STANDIN (a stand-in for apache/airflow:3.3.2-python3.11)"
  mkdir -p "$WORK/airflow"
  cat > "$WORK/airflow/Containerfile" <<CONTAINERFILE
FROM $PYTHON_BASE
# A stand-in for the official apache/airflow image, which this machine cannot pull: its user
# (airflow, uid 50000, group 0), AIRFLOW_HOME and a user-writable Python with a recent pip.
RUN useradd --uid 50000 --gid 0 --create-home --home-dir /home/airflow airflow \\
 && python3 -m venv /home/airflow/.local \\
 && /home/airflow/.local/bin/pip install --no-cache-dir --quiet --upgrade pip \\
 && install -d -o airflow -g 0 /opt/airflow \\
 && chown -R airflow:0 /home/airflow
ENV PATH=/home/airflow/.local/bin:\$PATH AIRFLOW_HOME=/opt/airflow
USER airflow
WORKDIR /opt/airflow
LABEL org.driftloop.standin="apache/airflow:3.3.2-python3.11"
CONTAINERFILE
  "$ENGINE" build --quiet -f "$WORK/airflow/Containerfile" -t "$AIRFLOW_STANDIN" \
    "$WORK/airflow" >/dev/null
fi
if ! have_image "$POSTGRES_STANDIN"; then
  say "building $POSTGRES_STANDIN (a stand-in for postgres:17-bookworm)"
  mkdir -p "$WORK/postgres"
  cp "$ROOT/scripts/images/postgres-entrypoint.sh" "$WORK/postgres/entrypoint.sh"
  cat > "$WORK/postgres/Containerfile" <<CONTAINERFILE
FROM $PYTHON_BASE
# A stand-in for the official postgres image, which this machine cannot pull: Debian's
# PostgreSQL 15 as uid/gid 999 (the official image's), behind an entrypoint with its contract.
RUN groupadd --gid 999 postgres \\
 && useradd --uid 999 --gid 999 --home-dir /var/lib/postgresql --shell /bin/sh postgres \\
 && apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\
      postgresql-15 >/dev/null \\
 && rm -rf /var/lib/apt/lists/* /var/lib/postgresql/15 /etc/postgresql/15/main \\
 && install -d -o postgres -g postgres /var/lib/postgresql/data /docker-entrypoint-initdb.d
COPY entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:\$PATH PGDATA=/var/lib/postgresql/data
USER 999
ENTRYPOINT ["bash", "/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]
LABEL org.driftloop.standin="postgres:17-bookworm"
CONTAINERFILE
  "$ENGINE" build --quiet -f "$WORK/postgres/Containerfile" -t "$POSTGRES_STANDIN" \
    "$WORK/postgres" >/dev/null
fi
say "local bases ready: $PYTHON_BASE, $UV_BASE, $AIRFLOW_STANDIN, $POSTGRES_STANDIN"
