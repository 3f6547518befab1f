"""Secrets: Vault / OpenBao and local sources rendered into files, kept fresh."""
