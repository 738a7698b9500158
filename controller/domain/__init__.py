"""Business logic over the store: organizations, keys, SIP settings, connections, numbers,
sessions, transcripts and idempotency. No HTTP here: the API and the call controller call it."""
