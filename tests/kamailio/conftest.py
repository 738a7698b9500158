from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from controller.kamailio.render import kamailio_binary


@pytest.fixture
def kamailio() -> str:
    exe = kamailio_binary()
    if exe is None:
        pytest.skip("kamailio is not installed (Debian: apt-get install kamailio kamailio-tls-modules)")
    return exe


@pytest.fixture
def tls_pair(tmp_path: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate and key (openssl)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=front.test"],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key
