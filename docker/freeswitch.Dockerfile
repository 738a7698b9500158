# syntax=docker/dockerfile:1.6
# FreeSWITCH 1.10.12 + mod_audio_stream (MIT edition) built from pinned upstream sources by
# docker/build-freeswitch.sh, the same recipe a developer runs on a Debian 12 host. No token, no
# prebuilt binary: the build stage fetches the pinned commits from GitHub. The first build takes
# about 5-10 minutes on 2 cores (docs/real-freeswitch.md); later builds reuse the layer.

FROM debian:bookworm-slim AS build
COPY docker/build-freeswitch.sh /usr/local/bin/build-freeswitch.sh
RUN set -eu; \
    /usr/local/bin/build-freeswitch.sh --deps --no-sipp \
        --prefix /opt/kallglot/freeswitch --work /tmp/freeswitch-build; \
    # What the runtime image does not need: headers, static and libtool archives, the stock
    # configuration (this project's tree is mounted), and the build trees.
    cd /opt/kallglot/freeswitch; \
    rm -rf include lib/*.a lib/*.la lib/freeswitch/mod/*.la lib/pkgconfig lib/cmake etc share/freeswitch/sounds; \
    rm -rf /tmp/freeswitch-build

FROM debian:bookworm-slim

ARG KALLGLOT_UID=10001

# The shared libraries the build linked against (ldd of freeswitch, fs_cli and every module).
RUN set -eu; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates \
        libssl3 libcurl4 libpcre3 libspeex1 libspeexdsp1 libsqlite3-0 libedit2 \
        libtiff6 libjpeg62-turbo libuuid1 zlib1g libopus0 libsndfile1 \
        libevent-2.1-7 libevent-openssl-2.1-7 libevent-pthreads-2.1-7; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --gid "${KALLGLOT_UID}" kallglot; \
    useradd --uid "${KALLGLOT_UID}" --gid kallglot --no-create-home --shell /usr/sbin/nologin kallglot; \
    mkdir -p /var/lib/freeswitch/db /var/log/freeswitch /var/run/freeswitch /var/lib/freeswitch/temp \
        /etc/kallglot/tls; \
    # /etc/kallglot/tls: a new named volume copies this ownership, so FreeSWITCH can write the
    # self-signed tls.pem it makes when no agent.pem/cafile.pem was provided.
    chown -R kallglot:kallglot /var/lib/freeswitch /var/log/freeswitch /var/run/freeswitch /etc/kallglot/tls; \
    # FreeSWITCH must write its -log (freeswitch.xml.fsxml: without it no config loads), -db, -run
    # and -temp (mod_audio_stream's ::play files) dirs under whatever uid runs the image:
    # tests/e2e/real_switch.py runs it as the invoking user so that it can read the 0600 secrets.
    chmod 1777 /var/lib/freeswitch/db /var/log/freeswitch /var/run/freeswitch /var/lib/freeswitch/temp

COPY --from=build /opt/kallglot/freeswitch /opt/kallglot/freeswitch
ENV PATH=/opt/kallglot/freeswitch/bin:$PATH
# Fails the build if a shared library is missing from the list above.
RUN freeswitch -version && ! ldd /opt/kallglot/freeswitch/bin/freeswitch /opt/kallglot/freeswitch/lib/freeswitch/mod/*.so | grep "not found"

# The config (freeswitch-conf/ of this repository) is mounted here by docker-compose.yml;
# the api container renders into the same volume. Both run as uid KALLGLOT_UID so that the
# 0600 gateway-password file is readable by FreeSWITCH and nobody else.
VOLUME ["/etc/kallglot/freeswitch"]
EXPOSE 5060/udp 5060/tcp 5061/tcp 8021/tcp

USER kallglot
ENTRYPOINT ["freeswitch", "-nf", "-nc", "-nonat", \
            "-conf", "/etc/kallglot/freeswitch", "-log", "/var/log/freeswitch", \
            "-db", "/var/lib/freeswitch/db", "-run", "/var/run/freeswitch", "-temp", "/var/lib/freeswitch/temp"]
