# The Python services (api, controller, bridge): one image, the command picks the service.
FROM python:3.11-slim-bookworm

ARG KALLGLOT_UID=10001

# espeak-ng (TTS) and Apertium (MT) for the offline translation engine.
RUN set -eu; \
    apt-get update; \
    apt-get install -y --no-install-recommends espeak-ng apertium apertium-eng-spa; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --gid "${KALLGLOT_UID}" kallglot; \
    useradd --uid "${KALLGLOT_UID}" --gid kallglot --create-home --shell /usr/sbin/nologin kallglot; \
    mkdir -p /var/lib/kallglot /etc/kallglot/freeswitch; \
    chown kallglot:kallglot /var/lib/kallglot /etc/kallglot/freeswitch

WORKDIR /app
# pyproject names README.md (readme) and LICENSE (license-files): without them the build warns
# and the installed package carries no licence text.
COPY pyproject.toml README.md LICENSE ./
COPY controller ./controller
COPY media_bridge ./media_bridge
RUN pip install --no-cache-dir ".[engine]"
# Templates are data, not part of the installed package: the renderer reads them from here.
COPY templates ./templates
ENV KALLGLOT_TEMPLATES_DIR=/app/templates \
    KALLGLOT_DB=/var/lib/kallglot/kallglot.db \
    KALLGLOT_FS_CONF_DIR=/etc/kallglot/freeswitch \
    PYTHONUNBUFFERED=1

USER kallglot
ENTRYPOINT ["kallglot"]
CMD ["api"]
