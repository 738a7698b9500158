"""The API log: each authenticated API request and each webhook delivery attempt, per organization.

Never bodies, query strings, secrets or API keys (docs/api.md "API log")."""
