"""The contract harness (check any server or client against openapi.yaml). Built in a later issue."""
