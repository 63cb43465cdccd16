"""Lifecycle rows for the SMTP servers (filled in with TestSMTPServer)."""

KINDS = []
