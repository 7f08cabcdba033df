"""The contract harness: check any server or client against openapi.yaml (schemathesis plus our own
checks), verify a client against a strict mock, the pytest plugin. It drives servers from outside."""
