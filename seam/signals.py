"""What the core tells other apps about, without importing them (the metrics app listens)."""

from django.dispatch import Signal

# One webhook delivery answered: outcome is "recorded", "duplicate" or "rejected".
webhook_delivery = Signal()

# One HTTP request to Seam answered or failed: endpoint (the API path), outcome ("ok",
# "rejected" for a 4xx, "failed" for a 429, a 5xx or no answer) and duration in seconds.
seam_request = Signal()
