"""Signed webhooks: endpoints, the durable outbox, and the delivery worker."""
