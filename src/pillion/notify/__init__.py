"""Telling the app that its files changed: one mechanism for secrets and config.

A target (``app.notify[]``) is a signal to a process (found by name or pid
file), an HTTP call (retried with backoff), or a command (with a timeout).
``Notifier.notify(name)`` runs one target, after its random splay, and counts
the result in ``pillion_notify_total{target,result}``. Notifications for the
same target that come while one is pending are merged into it.
"""

from pillion.notify.targets import Notifier, NotifyFamilies, find_processes

__all__ = ["Notifier", "NotifyFamilies", "find_processes"]
