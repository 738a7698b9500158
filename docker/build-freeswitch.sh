#!/usr/bin/env bash
# Build FreeSWITCH 1.10.12 + sofia-sip + spandsp + mod_audio_stream (MIT edition) + sipp from
# pinned upstream commits into one prefix. The FreeSWITCH image (docker/freeswitch.Dockerfile)
# runs this in its build stage; a developer runs the same script on a Debian 12 host for the
# real-switch e2e tests (docs/real-freeswitch.md). No token, no prebuilt binary.
#
#   docker/build-freeswitch.sh [--prefix DIR] [--work DIR] [--deps] [--no-sipp]
#
#   --prefix DIR   install here (default /opt/kallglot/freeswitch); binaries carry an rpath to it
#   --work DIR     source and build trees (default $PREFIX.build); reused by a second run
#   --deps         apt-get install the Debian build dependencies first (root or sudo)
#   --no-sipp      skip sipp (only the developer tools need it)
#
# Sources come from GitHub unless a variable names a local git repository (a clone or a bare
# mirror) holding the pinned commit: KALLGLOT_SRC_FREESWITCH, KALLGLOT_SRC_SOFIA_SIP,
# KALLGLOT_SRC_SPANDSP, KALLGLOT_SRC_MOD_AUDIO_STREAM, KALLGLOT_SRC_LIBWSC, KALLGLOT_SRC_SIPP.
# BUILD_JOBS sets make's parallelism (default: the number of cores).
set -euo pipefail

# --- pins (why each one: docs/real-freeswitch.md) ----------------------------------------
FREESWITCH_COMMIT=a88d069d6ffb74df797bcaf001f7e63181c07a09       # v1.10.12
SOFIA_SIP_COMMIT=6198851a610b7889c17e2d98fb84617bc1dd7aec        # v1.13.17
SPANDSP_COMMIT=0d2e6ac65e0e8f53d652665a743015a88bf048d4          # later ones fail with 1.10.12
MOD_AUDIO_STREAM_COMMIT=ec2a781026a1c09b0c3a6161b8b896f0b9305922 # MIT edition
LIBWSC_COMMIT=09d18e5db9243a996692261a7a0839c9c346bc47           # mod_audio_stream's submodule
SIPP_COMMIT=369b3c187f0ff96f3ec9795650820e80cf17c776             # v3.7.7 (TLS; Debian's 3.6 has none)
SIPP_VERSION=v3.7.7

# Only the modules freeswitch-conf/autoload_configs/modules.conf.xml loads
# (tests/fsconfig/test_deploy_files.py keeps the two lists equal).
FREESWITCH_MODULES=(
    loggers/mod_console
    loggers/mod_logfile
    event_handlers/mod_event_socket
    applications/mod_commands
    endpoints/mod_sofia
    dialplans/mod_dialplan_xml
    applications/mod_dptools
    codecs/mod_opus
    applications/mod_spandsp
    formats/mod_sndfile
    formats/mod_native_file
    formats/mod_tone_stream
)

# Debian 12 packages the build needs (the runtime subset is in docker/freeswitch.Dockerfile).
BUILD_DEPS=(
    git ca-certificates build-essential autoconf automake libtool libtool-bin pkg-config cmake
    yasm nasm libssl-dev libcurl4-openssl-dev libpcre3-dev libspeex-dev libspeexdsp-dev
    libsqlite3-dev libedit-dev libldns-dev libtiff-dev libjpeg-dev uuid-dev zlib1g-dev
    libopus-dev libsndfile1-dev libncurses-dev libevent-dev libpcap-dev
)

PREFIX=/opt/kallglot/freeswitch
WORK=""
INSTALL_DEPS=0
WITH_SIPP=1
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX="$2"; shift 2 ;;
        --work) WORK="$2"; shift 2 ;;
        --deps) INSTALL_DEPS=1; shift ;;
        --no-sipp) WITH_SIPP=0; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "build-freeswitch: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
WORK="${WORK:-$PREFIX.build}"
JOBS="${BUILD_JOBS:-$(nproc)}"
mkdir -p "$PREFIX" "$WORK"
PREFIX="$(cd "$PREFIX" && pwd)"
WORK="$(cd "$WORK" && pwd)"

log() { printf '[build-freeswitch %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

if [ "$INSTALL_DEPS" = 1 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${BUILD_DEPS[@]}"
fi

# checkout REPO COMMIT DEST [EXCLUDED PATH...]
# A work tree of COMMIT in DEST. A local repository is shared (no copy of its objects); a URL
# is fetched at depth 1. Excluded paths are left out with a sparse checkout, so that a mirror
# lacking their blobs (FreeSWITCH's 4k test video) still checks out.
checkout() {
    local repo="$1" commit="$2" dest="$3"
    shift 3
    if [ -e "$dest/.kallglot-commit" ] && [ "$(cat "$dest/.kallglot-commit")" = "$commit" ]; then
        return 0
    fi
    rm -rf "$dest"
    if [ -d "$repo" ]; then
        # safe.directory: a mirror owned by another user is still read (git refuses otherwise).
        git -c safe.directory="$repo" clone -q --shared --no-checkout "$repo" "$dest"
    else
        git init -q "$dest"
        git -C "$dest" fetch -q --depth 1 "$repo" "$commit"
    fi
    if [ $# -gt 0 ]; then
        git -C "$dest" config core.sparseCheckout true
        { echo '/*'; for path in "$@"; do echo "!/$path"; done; } > "$dest/.git/info/sparse-checkout"
    fi
    git -C "$dest" -c advice.detachedHead=false checkout -q "$commit"
    echo "$commit" > "$dest/.kallglot-commit"
}

# built NAME: true when NAME was already installed from the same pins (a re-run is cheap).
stamp() { echo "$PREFIX/.kallglot-built-$1"; }
built() { [ -e "$(stamp "$1")" ] && [ "$(cat "$(stamp "$1")")" = "$2" ]; }

export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export LDFLAGS="-Wl,-rpath,$PREFIX/lib ${LDFLAGS:-}"
export CPPFLAGS="-I$PREFIX/include ${CPPFLAGS:-}"

build_sofia_sip() {
    built sofia-sip "$SOFIA_SIP_COMMIT" && return 0
    log "sofia-sip $SOFIA_SIP_COMMIT"
    checkout "${KALLGLOT_SRC_SOFIA_SIP:-https://github.com/freeswitch/sofia-sip.git}" \
        "$SOFIA_SIP_COMMIT" "$WORK/sofia-sip"
    (cd "$WORK/sofia-sip" && ./bootstrap.sh >/dev/null \
        && ./configure -q --prefix="$PREFIX" --with-openssl --disable-stun \
        && make -s -j"$JOBS" >/dev/null && make -s install >/dev/null)
    echo "$SOFIA_SIP_COMMIT" > "$(stamp sofia-sip)"
}

build_spandsp() {
    built spandsp "$SPANDSP_COMMIT" && return 0
    log "spandsp $SPANDSP_COMMIT"
    checkout "${KALLGLOT_SRC_SPANDSP:-https://github.com/freeswitch/spandsp.git}" \
        "$SPANDSP_COMMIT" "$WORK/spandsp"
    (cd "$WORK/spandsp" && ./bootstrap.sh >/dev/null \
        && ./configure -q --prefix="$PREFIX" \
        && make -s -j"$JOBS" >/dev/null && make -s install >/dev/null)
    echo "$SPANDSP_COMMIT" > "$(stamp spandsp)"
}

build_freeswitch() {
    local key
    key="$FREESWITCH_COMMIT ${FREESWITCH_MODULES[*]}"
    built freeswitch "$key" && return 0
    log "FreeSWITCH $FREESWITCH_COMMIT (${#FREESWITCH_MODULES[@]} modules)"
    checkout "${KALLGLOT_SRC_FREESWITCH:-https://github.com/signalwire/freeswitch.git}" \
        "$FREESWITCH_COMMIT" "$WORK/freeswitch" src/mod/applications/mod_fsv/freeswitch-4k.yuv
    printf '%s\n' "${FREESWITCH_MODULES[@]}" > "$WORK/freeswitch/modules.conf"
    (cd "$WORK/freeswitch" && ./bootstrap.sh -j >/dev/null \
        && ./configure -q --prefix="$PREFIX" --disable-libvpx --without-libks \
        && make -s -j"$JOBS" >/dev/null && make -s install >/dev/null)
    echo "$key" > "$(stamp freeswitch)"
}

build_mod_audio_stream() {
    built mod_audio_stream "$MOD_AUDIO_STREAM_COMMIT $LIBWSC_COMMIT" && return 0
    log "mod_audio_stream $MOD_AUDIO_STREAM_COMMIT, libwsc $LIBWSC_COMMIT (TLS)"
    checkout "${KALLGLOT_SRC_MOD_AUDIO_STREAM:-https://github.com/amigniter/mod_audio_stream.git}" \
        "$MOD_AUDIO_STREAM_COMMIT" "$WORK/mod_audio_stream"
    # The submodule at the commit mod_audio_stream records (checked, not assumed).
    local recorded
    recorded="$(git -C "$WORK/mod_audio_stream" ls-tree HEAD libs/libwsc | awk '{print $3}')"
    if [ "$recorded" != "$LIBWSC_COMMIT" ]; then
        echo "build-freeswitch: mod_audio_stream records libwsc $recorded, pinned $LIBWSC_COMMIT" >&2
        exit 1
    fi
    checkout "${KALLGLOT_SRC_LIBWSC:-https://github.com/amigniter/libwsc.git}" \
        "$LIBWSC_COMMIT" "$WORK/mod_audio_stream/libs/libwsc"
    cmake -S "$WORK/mod_audio_stream" -B "$WORK/mod_audio_stream/build" -DCMAKE_BUILD_TYPE=Release \
        -DUSE_TLS=ON -DCMAKE_INSTALL_PREFIX="$PREFIX" >/dev/null
    cmake --build "$WORK/mod_audio_stream/build" -j"$JOBS" >/dev/null
    cmake --install "$WORK/mod_audio_stream/build" >/dev/null
    echo "$MOD_AUDIO_STREAM_COMMIT $LIBWSC_COMMIT" > "$(stamp mod_audio_stream)"
}

build_sipp() {
    built sipp "$SIPP_COMMIT" && return 0
    log "sipp $SIPP_VERSION $SIPP_COMMIT (TLS, pcap)"
    checkout "${KALLGLOT_SRC_SIPP:-https://github.com/SIPp/sipp.git}" "$SIPP_COMMIT" "$WORK/sipp"
    # sipp takes its version from `git describe`; a shallow or shared clone may have no tags,
    # and its CMake then wants an include/version.h (as in a release archive).
    if ! git -C "$WORK/sipp" describe --tags >/dev/null 2>&1; then
        printf '#ifndef SIPP_VERSION\n#define SIPP_VERSION "%s"\n#endif\n' "$SIPP_VERSION" \
            > "$WORK/sipp/include/version.h"
    fi
    cmake -S "$WORK/sipp" -B "$WORK/sipp/build" -DUSE_SSL=1 -DUSE_PCAP=1 -DUSE_GSL=0 \
        -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$WORK/sipp/build" -j"$JOBS" >/dev/null
    install -m 755 "$WORK/sipp/build/sipp" "$PREFIX/bin/sipp"
    echo "$SIPP_COMMIT" > "$(stamp sipp)"
}

started=$(date +%s)
build_sofia_sip
build_spandsp
build_freeswitch
build_mod_audio_stream
[ "$WITH_SIPP" = 1 ] && build_sipp

test -f "$PREFIX/lib/freeswitch/mod/mod_audio_stream.so" \
    || { echo "build-freeswitch: mod_audio_stream.so not installed" >&2; exit 1; }
"$PREFIX/bin/freeswitch" -version
log "done in $(( $(date +%s) - started )) s: $PREFIX"
