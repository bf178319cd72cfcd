# otelbpf container image: the agent, the BPF objects and the example program configs.
#
# Without access to an image registry, make the debian:bookworm base locally first
# (packaging/README.md has the details):
#   debootstrap --variant=minbase bookworm /tmp/bookworm http://deb.debian.org/debian
#   tar -C /tmp/bookworm -c . | podman import - debian:bookworm
#   podman build --isolation=chroot -t otelbpf .
# (packaging/container-check does exactly this, with the base tarball cached, and runs
# `otelbpf check` in the result.) Another base: --build-arg BASE=IMAGE.
# With a registry, `docker build -t otelbpf .` or `podman build -t otelbpf .` is enough.
#
# The objects are CO-RE: vmlinux.h comes from the build machine's /sys/kernel/btf/vmlinux (or a
# bpf/build/vmlinux.h already in the build context) and libbpf relocates field offsets for the
# kernel the container later runs on.

# Any Debian-like base with python3 (>= 3.9) and libbpf1 works for the runtime.
ARG BASE=debian:bookworm

FROM ${BASE} AS build
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        clang llvm libbpf-dev bpftool make python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY otelbpf ./otelbpf
COPY bpf ./bpf
# Objects copied in from a developer's tree would count as up to date: rebuild them here.
# Behind a TLS-intercepting proxy, hand pip the CA bundle as a build secret:
#   --secret id=ca-certificates,src=/etc/ssl/certs/ca-certificates.crt
RUN --mount=type=secret,id=ca-certificates \
    if [ -s /run/secrets/ca-certificates ]; then export PIP_CERT=/run/secrets/ca-certificates; fi \
    && rm -f bpf/build/*.bpf.o bpf/build/tests/*.bpf.o \
    && make -C bpf shipped \
    && python3 -m venv /opt/otelbpf \
    && /opt/otelbpf/bin/pip install --no-cache-dir -q .

FROM ${BASE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        python3 libbpf1 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/otelbpf /opt/otelbpf
COPY --from=build /src/bpf/build/*.bpf.o /usr/lib/otelbpf/bpf/
COPY conf/conf.d /etc/otelbpf/conf.d
COPY conf/otelbpf.toml /etc/otelbpf/otelbpf.toml
RUN sed -i 's|^objects_dir = .*|objects_dir = "/usr/lib/otelbpf/bpf"|' /etc/otelbpf/otelbpf.toml \
    && grep -q '^objects_dir = "/usr/lib/otelbpf/bpf"' /etc/otelbpf/otelbpf.toml \
    && mkdir -p /var/lib/otelbpf \
    && rm -f /etc/machine-id /var/lib/dbus/machine-id
ENV PATH=/opt/otelbpf/bin:$PATH PYTHONUNBUFFERED=1
# Needs the host's /sys/fs/bpf and /sys/kernel/tracing, the host PID namespace and the
# capabilities listed in packaging/README.md (see packaging/kubernetes/daemonset.yaml). No
# machine-id is baked in: mount the host's /etc/machine-id so service.instance.id and host.id
# identify the node (without it, a random id is kept in /var/lib/otelbpf).
ENTRYPOINT ["otelbpf", "run"]
CMD ["--config", "/etc/otelbpf/otelbpf.toml"]
