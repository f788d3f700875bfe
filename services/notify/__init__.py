"""The notify stage: route alerts to subscriptions, dedupe, group, render, send, record."""
