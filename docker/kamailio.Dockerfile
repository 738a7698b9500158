# The Kamailio front (docs/kamailio.md) for docker/compose.multinode.yml: Debian bookworm's
# kamailio 5.6 + TLS modules, and this package for `kallglot kamailio render`, which writes the
# configuration from the node list at every start (docker/kamailio-start.sh).
FROM python:3.11-slim-bookworm

RUN set -eu; \
    apt-get update; \
    apt-get install -y --no-install-recommends kamailio kamailio-tls-modules openssl; \
    rm -rf /var/lib/apt/lists/*; \
    mkdir -p /etc/kamailio/kallglot /etc/kamailio/tls /run/kamailio

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY controller ./controller
COPY media_bridge ./media_bridge
# No [engine] extra: rendering needs only the package's own dependencies.
RUN pip install --no-cache-dir .
COPY templates ./templates
COPY docker/kamailio-start.sh /usr/local/bin/kamailio-start.sh
ENV KALLGLOT_TEMPLATES_DIR=/app/templates \
    PYTHONUNBUFFERED=1

EXPOSE 5060/udp 5060/tcp 5061/tcp
ENTRYPOINT ["sh", "/usr/local/bin/kamailio-start.sh"]
