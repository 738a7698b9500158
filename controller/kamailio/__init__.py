"""The Kamailio front (docs/kamailio.md): kamailio.cfg, dispatcher.list and tls.cfg rendered
from a plain list of FreeSWITCH nodes, so any node registry can feed it."""
