"""Tests of the export stage (otelbpf.export): encoding, transports, retries, real backends."""
