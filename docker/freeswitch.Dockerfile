# syntax=docker/dockerfile:1.6
# FreeSWITCH 1.10 from SignalWire's Debian 12 packages + mod_audio_stream from a pre-built .deb.
# Nothing is compiled here. Prerequisites (docs/freeswitch-config.md):
#   - a SignalWire Personal Access Token (free account) passed as the build secret
#     `signalwire_token`; it is used for apt only and never stored in a layer;
#   - MOD_AUDIO_STREAM_DEB_URL: a mod_audio_stream .deb built for Debian 12 against SignalWire's
#     FreeSWITCH packages (amigniter/mod_audio_stream GitHub releases; check the licence of the
#     build you pick).
FROM debian:bookworm-slim

ARG MOD_AUDIO_STREAM_DEB_URL
ARG KALLGLOT_UID=10001

RUN --mount=type=secret,id=signalwire_token,required=true \
    set -eu; \
    test -n "${MOD_AUDIO_STREAM_DEB_URL}" || { echo "set --build-arg MOD_AUDIO_STREAM_DEB_URL" >&2; exit 1; }; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl gnupg; \
    token="$(cat /run/secrets/signalwire_token)"; \
    curl -fsSL --user "signalwire:${token}" \
        -o /usr/share/keyrings/signalwire-freeswitch-repo.gpg \
        https://freeswitch.signalwire.com/repo/deb/debian-release/signalwire-freeswitch-repo.gpg; \
    install -m 600 /dev/null /etc/apt/auth.conf.d/signalwire.conf; \
    printf 'machine freeswitch.signalwire.com login signalwire password %s\n' "${token}" \
        > /etc/apt/auth.conf.d/signalwire.conf; \
    echo "deb [signed-by=/usr/share/keyrings/signalwire-freeswitch-repo.gpg] https://freeswitch.signalwire.com/repo/deb/debian-release/ bookworm main" \
        > /etc/apt/sources.list.d/freeswitch.list; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        freeswitch freeswitch-mod-console freeswitch-mod-logfile freeswitch-mod-event-socket \
        freeswitch-mod-commands freeswitch-mod-sofia freeswitch-mod-dialplan-xml freeswitch-mod-dptools \
        freeswitch-mod-opus freeswitch-mod-spandsp freeswitch-mod-sndfile freeswitch-mod-native-file; \
    curl -fsSL -o /tmp/mod-audio-stream.deb "${MOD_AUDIO_STREAM_DEB_URL}"; \
    apt-get install -y --no-install-recommends /tmp/mod-audio-stream.deb; \
    rm -f /etc/apt/auth.conf.d/signalwire.conf /etc/apt/sources.list.d/freeswitch.list /tmp/mod-audio-stream.deb; \
    apt-get purge -y --auto-remove gnupg; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --gid "${KALLGLOT_UID}" kallglot; \
    useradd --uid "${KALLGLOT_UID}" --gid kallglot --no-create-home --shell /usr/sbin/nologin kallglot; \
    mkdir -p /var/lib/freeswitch/db /var/log/freeswitch /var/run/freeswitch /var/lib/freeswitch/temp; \
    chown -R kallglot:kallglot /var/lib/freeswitch /var/log/freeswitch /var/run/freeswitch; \
    # FreeSWITCH must write its -log (freeswitch.xml.fsxml: without it no config loads), -db, -run
    # and -temp (mod_audio_stream's ::play files) dirs under whatever uid runs the image:
    # tests/e2e/real_switch.py runs it as the invoking user so that it can read the 0600 secrets.
    chmod 1777 /var/lib/freeswitch/db /var/log/freeswitch /var/run/freeswitch /var/lib/freeswitch/temp

# The config (freeswitch-conf/ of this repository) is mounted here by docker-compose.yml;
# the api container renders into the same volume. Both run as uid KALLGLOT_UID so that the
# 0600 gateway-password file is readable by FreeSWITCH and nobody else.
VOLUME ["/etc/kallglot/freeswitch"]
EXPOSE 5060/udp 5060/tcp 5061/tcp 8021/tcp

USER kallglot
ENTRYPOINT ["freeswitch", "-nf", "-nc", "-nonat", \
            "-conf", "/etc/kallglot/freeswitch", "-log", "/var/log/freeswitch", \
            "-db", "/var/lib/freeswitch/db", "-run", "/var/run/freeswitch", "-temp", "/var/lib/freeswitch/temp"]
