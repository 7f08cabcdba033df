"""The HTTP façade of avala-mock: routes bound from openapi.yaml, validation, auth, serialisation."""
