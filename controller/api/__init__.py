"""The /v1 HTTP API (aiohttp): sessions, provider connections, phone numbers, SIP settings."""
