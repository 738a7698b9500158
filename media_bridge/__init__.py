"""Kallglot translation bridge: the mod_audio_stream websocket server and the speech engines."""
