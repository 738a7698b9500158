#!/bin/sh
# Render the front from KALLGLOT_KAMAILIO_NODES / _LISTEN (space-separated, the flags'
# syntax: docs/kamailio.md), check it with `kamailio -c`, then run Kamailio in the foreground.
# A changed node list: re-create the container (or render again and `kamcmd dispatcher.reload`).
set -eu

out=/etc/kamailio/kallglot
tls=/etc/kamailio/tls
if [ ! -s "$tls/cert.pem" ] || [ ! -s "$tls/key.pem" ]; then
    # TLS on 5061 needs a certificate to start at all; mount your own into /etc/kamailio/tls.
    openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=${KALLGLOT_SIP_DOMAIN:-sip.kallglot.local}" \
        -keyout "$tls/key.pem" -out "$tls/cert.pem" 2>/dev/null
    echo "kamailio-start: made a self-signed certificate in $tls" >&2
fi

set -- kallglot kamailio render --out "$out" --tls-cert "$tls/cert.pem" --tls-key "$tls/key.pem" \
    --probe-interval "${KALLGLOT_KAMAILIO_PROBE_INTERVAL_S:-10}" --run-dir /run/kamailio --check
for node in ${KALLGLOT_KAMAILIO_NODES:?set KALLGLOT_KAMAILIO_NODES}; do
    set -- "$@" --node "$node"
done
for socket in ${KALLGLOT_KAMAILIO_LISTEN:-}; do
    set -- "$@" --listen "$socket"
done
"$@"

exec kamailio -DD -E -f "$out/kamailio.cfg"
