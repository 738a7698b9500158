"""ESL layer: wire protocol (protocol.py), inbound client (inbound.py), outbound server (outbound.py).

See docs/esl-layer.md for the API the call logic and the API process use.
"""
