"""Kallglot SIP edge control plane: API, store, routing, config rendering and the ESL call controller."""

__version__ = "0.1.0"
