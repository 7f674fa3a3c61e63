"""Webhook dispatch: tell the systems a warning's routes name (CRM, project tools, LMS) what happened to it.

Its own concern (Alertmanager's dispatch/) because every state change ends in it, but none of them should know how
a delivery is queued, signed or retried: that is serving.webhooks, behind `self.webhooks`, and never blocks.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from serving.store.schema import WarningRecord


class WebhookDispatch:
    """A mixin of WarningStore: it expects `self.webhooks` (a WebhookDispatcher, or None for no integrations)."""

    def _dispatch(self, event_name: str, record: WarningRecord, now: datetime) -> None:
        """Queue the lifecycle event for the integrations the warning's routes name (never blocks)."""
        if self.webhooks is None:
            return
        warning = None  # serialised once, and only when some target has a URL (most routes have none)
        for target in record.decision.get("webhooks", {}).get(event_name, []):
            if target not in self.webhooks.targets:
                self.webhooks.send(target, event_name, {})  # logs that the target has no URL; sends nothing
                continue
            actions = [{**action, "due_at": (now + timedelta(hours=action["due_hours"])).isoformat()
                        if action["due_hours"] else None}
                       for action in record.decision.get("actions", []) if action["system"] == target]
            warning = warning or record.as_dict()
            self.webhooks.send(target, event_name, {"warning": warning, "actions": actions})
