"""Widgets of the app: the line-API queue and conversation views, progress and counters."""
